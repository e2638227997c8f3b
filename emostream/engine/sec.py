"""SEC branch: 16 kHz waveform -> speech-emotion embedding (how it was said).

Two encoders share one pooling head (``SECHead``) so the report compares representations only:
- ``WhisperSEC`` (shipped): log-mel -> Whisper tiny.en encoder initialised from the bundled
  CTranslate2 weights, top layers fine-tuned -> softmax-weighted sum of every layer's states ->
  mean + std over the speech frames.
- ``CompactSEC``: log-mel -> a small conv net trained from scratch -> the same head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from emostream.engine.logmel import LogMel
from emostream.engine.whisper_encoder import WhisperEncoderStack

SPEECH_FLOOR = 0.75  # log-mel units (1 unit = 40 dB): frames more than 30 dB under the peak are not speech
NOISE_MARGIN = 0.15  # ... nor frames within 6 dB of the noise floor (the quietest 100 ms of the utterance)
NOISE_WINDOW = 5  # encoder frames (20 ms each) averaged before taking the minimum


@dataclass(frozen=True)
class SECHeadConfig:
    dim: int = 384
    num_states: int = 5
    dropout: float = 0.2
    num_labels: int = 7

    @property
    def embed_dim(self) -> int:
        return 2 * self.dim


def speech_frame_mask(mel: torch.Tensor, frames: int, noise_gate: bool = True) -> torch.Tensor:
    """(batch, 80, T) log-mel -> (batch, frames) True where a frame is within 30 dB of the peak and
    6 dB above the noise floor, so room tone is not pooled as speech (the loudest frame always counts)."""
    # Same geometry as the encoder's stride-2 conv (kernel 3, padding 1), so lengths always agree.
    energy = F.avg_pool1d(mel.mean(dim=1, keepdim=True), 3, stride=2, padding=1, count_include_pad=False)
    energy = energy.squeeze(1)[:, :frames]
    peak = energy.amax(dim=1, keepdim=True)
    if not noise_gate:  # the peak-relative rule alone (bundles without noise_gate; kept for the comparison)
        return energy > peak - SPEECH_FLOOR
    smooth = F.avg_pool1d(energy[:, None], NOISE_WINDOW, stride=1, padding=NOISE_WINDOW // 2, count_include_pad=False)
    floor = smooth[:, 0].amin(dim=1, keepdim=True)
    threshold = torch.minimum(torch.maximum(peak - SPEECH_FLOOR, floor + NOISE_MARGIN), peak)
    return energy >= threshold


def masked_stats(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, frames, dim), (batch, frames) -> (batch, 2*dim) mean and std over masked frames
    (a float mask whose rows sum to 1 gives the weighted mean and std)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    n = m.sum(dim=1).clamp(min=1.0)
    mean = (x * m).sum(dim=1) / n
    var = (((x - mean.unsqueeze(1)) ** 2) * m).sum(dim=1) / n
    return torch.cat([mean, torch.sqrt(var + 1e-5)], dim=-1)


def layer_stats(states: torch.Tensor, mask: torch.Tensor, which: tuple[int, ...] | None = None) -> torch.Tensor:
    """(states, batch, frames, dim) -> (batch, len(which) * 2 * dim): every read state's mean and std
    over the mask, concatenated -- the probe's input, and the one place it is computed."""
    return torch.cat([masked_stats(states[i], mask) for i in (range(len(states)) if which is None else which)], dim=-1)


class SECHead(nn.Module):
    """Layer states (states, batch, frames, dim) + speech mask -> embedding; embedding -> logits."""

    def __init__(self, cfg: SECHeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.layer_logits = nn.Parameter(torch.zeros(cfg.num_states))
        self.norm = nn.LayerNorm(cfg.dim, elementwise_affine=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classify = nn.Linear(cfg.embed_dim, cfg.num_labels)

    def embedding(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.layer_logits, dim=0).view(-1, 1, 1, 1)
        return masked_stats((w * self.norm(states)).sum(dim=0), mask)

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return self.classify(self.dropout(emb))


class ProbeHead(nn.Module):
    """Frozen-encoder probe: per-layer mean+std, concatenated, standardised -> linear.

    Fitted as an L2 logistic regression (scikit-learn) and copied in, so it exports like any module.
    """

    def __init__(self, cfg: SECHeadConfig, states: tuple[int, ...] | None = None) -> None:
        """``states``: which encoder states (0 = conv front end, 1.. = layers) are read; default all."""
        super().__init__()
        self.cfg = cfg
        self.states = tuple(range(cfg.num_states)) if states is None else tuple(states)
        dim = len(self.states) * cfg.embed_dim
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.classify = nn.Linear(dim, cfg.num_labels)

    def embedding(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (layer_stats(states, mask, self.states) - self.mean) / self.scale

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return self.classify(emb)


class AttentiveProbeHead(ProbeHead):
    """The probe with learned frame weights instead of a uniform mean over the speech mask.

    A small scorer over the (normalised, layer-averaged) frames gives each speech frame a softmax
    weight; every read state is pooled as weighted mean + std. With the scorer's output at zero the
    weights are uniform over the mask, i.e. exactly the probe it is initialised from.
    """

    def __init__(self, cfg: SECHeadConfig, states: tuple[int, ...] | None = None, hidden: int = 64) -> None:
        super().__init__(cfg, states)
        self.norm = nn.LayerNorm(cfg.dim, elementwise_affine=False)
        self.project = nn.Linear(cfg.dim, hidden)
        self.score = nn.Linear(hidden, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def frame_weights(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, frames) softmax weights over the speech mask (the mask always keeps a frame)."""
        h = torch.stack([self.norm(states[i]) for i in self.states]).mean(dim=0)
        scores = self.score(torch.tanh(self.project(h))).squeeze(-1)
        return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)

    def embedding(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # the weights sum to 1 per row, so the masked stats are the weighted mean and std
        return (layer_stats(states, self.frame_weights(states, mask), self.states) - self.mean) / self.scale


MAX_SAMPLES = 2 * 1500 * 160 - 1  # the longest waveform the Whisper encoder's positions cover (30 s - 1 sample)


class SECModel(nn.Module):
    """waveform (batch, samples) -> (embedding, logits). Exported to ONNX as one graph."""

    def __init__(self, encoder: nn.Module, head: SECHead, noise_gate: bool = True) -> None:
        """``noise_gate``: the speech mask also drops frames near the noise floor (bundles trained
        with it say so in their manifest; older ones used the peak-relative mask alone)."""
        super().__init__()
        self.logmel = LogMel()
        self.encoder = encoder
        self.head = head
        self.noise_gate = noise_gate

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb, logits, _, _ = self.with_frames(waveform)
        return emb, logits

    def with_frames(self, waveform: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """forward() plus the last layer's frames and the speech-frame mask (the searched fusion's input)."""
        # Whisper has 1500 positions: 479999 samples give 3000 mel frames -> 1500; one more sample would not fit
        mel = self.logmel(waveform[:, :MAX_SAMPLES])
        states = self.encoder(mel)
        mask = speech_frame_mask(mel, states.shape[2], self.noise_gate)
        emb = self.head.embedding(states, mask)
        return emb, self.head.logits(emb), states[-1], mask


class CompactConvEncoder(nn.Module):
    """From-scratch alternative: log-mel (batch, 80, T) -> (1, batch, ceil(T/2), dim)."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(80, dim, 5, padding=2), nn.BatchNorm1d(dim), nn.GELU(),
            nn.Conv1d(dim, dim, 3, stride=2, padding=1), nn.BatchNorm1d(dim), nn.GELU(),
            nn.Conv1d(dim, dim, 3, padding=2, dilation=2), nn.BatchNorm1d(dim), nn.GELU(),
            nn.Conv1d(dim, dim, 3, padding=4, dilation=4), nn.BatchNorm1d(dim), nn.GELU(),
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel).transpose(1, 2).unsqueeze(0)


HEADS = {"pooling": SECHead, "probe": ProbeHead}


def whisper_sec(asr_model_dir: str, head: str = "pooling", states: tuple[int, ...] | None = None,
                noise_gate: bool = True) -> SECModel:
    """The Whisper SEC initialised from the CTranslate2 weights, with an untrained head of kind ``head``."""
    encoder = WhisperEncoderStack.from_ct2(asr_model_dir)
    cfg = SECHeadConfig(dim=encoder.config.d_model, num_states=encoder.num_states)
    head_module = ProbeHead(cfg, states) if head == "probe" else SECHead(cfg)
    return SECModel(encoder, head_module, noise_gate)
