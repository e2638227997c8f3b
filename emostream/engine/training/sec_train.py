"""Train the SEC branch on RAVDESS: the shipped Whisper-based encoder (b) and the from-scratch
compact encoder (a), on the same speaker-independent folds and the same pooling head.

(b) caches the frozen lower Whisper states once (original clip + one augmented copy) and
fine-tunes only the top ``tuned_from..`` layers, which keeps a fold to a few minutes on 2 cores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from emostream.engine.logmel import LogMel
from emostream.engine.sec import (CompactConvEncoder, ProbeHead, SECHead, SECHeadConfig, SECModel,
                                  speech_frame_mask)
from emostream.engine.whisper_encoder import WhisperEncoderStack

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SECTrainConfig:
    head: str = "probe"  # "probe": frozen encoder + LR probe; "pooling": fine-tune layers tuned_from.. + pooling head
    probe_c: float = 0.003  # inverse L2 strength of the probe's logistic regression
    tuned_from: int = 2  # fine-tune Whisper layers 2..3 (+ final layer norm); 0-1 and convs stay frozen
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    frame_dropout: float = 0.1
    label_smoothing: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class CompactConfig:
    dim: int = 64
    epochs: int = 15
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0


@dataclass
class LowStates:
    """Frozen lower-layer states of one clip: (tuned_from+1, frames, dim) fp16 and a speech mask."""

    states: torch.Tensor
    mask: torch.Tensor


def compute_low_states(encoder: WhisperEncoderStack, mels: list[torch.Tensor], upto: int, desc: str,
                       noise_gate: bool = True) -> list[LowStates]:
    out = []
    with torch.no_grad():
        for mel in tqdm(mels, desc=desc, unit="clip", leave=False):
            states = torch.stack(encoder.run_layers([encoder.embed(mel[None])], 0, stop=upto))
            out.append(LowStates(states[:, 0].half(), speech_frame_mask(mel[None], states.shape[2], noise_gate)[0]))
    return out


def log_mels(waveforms: list[np.ndarray], desc: str) -> list[torch.Tensor]:
    logmel = LogMel()
    with torch.no_grad():
        return [logmel(torch.from_numpy(w)[None])[0] for w in tqdm(waveforms, desc=desc, unit="clip", leave=False)]


def _batch(items: list[LowStates], frame_dropout: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    length = max(i.states.shape[1] for i in items)
    depth, _, dim = items[0].states.shape
    x = torch.zeros(depth, len(items), length, dim)
    frames = torch.zeros(len(items), length, dtype=torch.bool)
    speech = torch.zeros(len(items), length, dtype=torch.bool)
    for j, item in enumerate(items):
        n = item.states.shape[1]
        x[:, j, :n] = item.states.float()
        frames[j, :n] = True
        speech[j, :n] = item.mask
        if frame_dropout:
            keep = speech[j, :n] & (torch.rand(n) > frame_dropout)
            if keep.any():
                speech[j, :n] = keep
    return x, frames, speech


def whisper_outputs(encoder: WhisperEncoderStack, head: SECHead | ProbeHead, x: torch.Tensor, frames: torch.Tensor,
                    speech: torch.Tensor, tuned_from: int) -> tuple[torch.Tensor, torch.Tensor]:
    states = torch.stack(encoder.run_layers(list(x), tuned_from, frames))
    emb = head.embedding(states, speech)
    return emb, head.logits(emb)


def train_whisper_sec(asr_dir: str, train: list[list[LowStates]], labels: np.ndarray, cfg: SECTrainConfig,
                      desc: str = "SEC", head: SECHead | ProbeHead | None = None
                      ) -> tuple[WhisperEncoderStack, SECHead | ProbeHead]:
    """``train[c][i]``: copy c (0 = original, 1.. = augmented) of clip i. ``head``: start from this
    head (e.g. a fitted probe) instead of a new weighted-layer pooling head."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    encoder = WhisperEncoderStack.from_ct2(asr_dir)
    if head is None:
        head = SECHead(SECHeadConfig(dim=encoder.config.d_model, num_states=encoder.num_states))
    for p in encoder.parameters():
        p.requires_grad_(False)
    tuned = [p for layer in encoder.layers[cfg.tuned_from:] for p in layer.parameters()] + list(encoder.layer_norm.parameters())
    for p in tuned:
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": tuned, "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    n = len(labels)
    steps = cfg.epochs * int(np.ceil(n / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[cfg.lr, cfg.head_lr], total_steps=steps, pct_start=0.15)
    encoder.train()
    head.train()
    bar = tqdm(total=steps, desc=desc, unit="step", leave=False)
    for _ in range(cfg.epochs):
        order = rng.permutation(n)
        for k in range(0, n, cfg.batch_size):
            idx = order[k:k + cfg.batch_size]
            copies = rng.integers(0, len(train), len(idx))
            x, frames, speech = _batch([train[c][i] for c, i in zip(copies, idx)], cfg.frame_dropout)
            _, logits = whisper_outputs(encoder, head, x, frames, speech, cfg.tuned_from)
            loss = F.cross_entropy(logits, torch.from_numpy(labels[idx]), label_smoothing=cfg.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    for p in tuned:
        p.requires_grad_(False)
    return encoder.eval(), head.eval()


def predict_whisper_sec(encoder: WhisperEncoderStack, head: SECHead | ProbeHead, items: list[LowStates], tuned_from: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and logits, one clip at a time (no padding: exactly what inference computes)."""
    embs, logits = [], []
    with torch.no_grad():
        for item in items:
            x, frames, speech = _batch([item], 0.0)
            e, l = whisper_outputs(encoder, head, x, None, speech, tuned_from)
            embs.append(e[0].numpy())
            logits.append(l[0].numpy())
    return np.stack(embs), np.stack(logits)


def _mel_batch(mels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(m.shape[1] for m in mels)
    floor = min(float(m.min()) for m in mels)
    x = torch.full((len(mels), mels[0].shape[0], length), floor)
    speech = torch.zeros(len(mels), (length + 1) // 2, dtype=torch.bool)
    for j, m in enumerate(mels):
        x[j, :, : m.shape[1]] = m
        frames = (m.shape[1] + 1) // 2
        speech[j, :frames] = speech_frame_mask(m[None], frames)[0]
    return x, speech


def train_compact_sec(train: list[list[torch.Tensor]], labels: np.ndarray, cfg: CompactConfig,
                      desc: str = "compact SEC") -> SECModel:
    """(a): conv encoder + the same head, from scratch on log-mel (original + augmented copies)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SECModel(CompactConvEncoder(cfg.dim), SECHead(SECHeadConfig(dim=cfg.dim, num_states=1)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    n = len(labels)
    steps = cfg.epochs * int(np.ceil(n / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    model.train()
    for _ in tqdm(range(cfg.epochs), desc=desc, unit="epoch", leave=False):
        order = rng.permutation(n)
        for k in range(0, n, cfg.batch_size):
            idx = order[k:k + cfg.batch_size]
            copies = rng.integers(0, len(train), len(idx))
            mel, speech = _mel_batch([train[c][i] for c, i in zip(copies, idx)])
            emb = model.head.embedding(model.encoder(mel), speech)
            loss = F.cross_entropy(model.head.logits(emb), torch.from_numpy(labels[idx]), label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def predict_compact_sec(model: SECModel, mels: list[torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        out = []
        for m in mels:
            states = model.encoder(m[None])
            emb = model.head.embedding(states, speech_frame_mask(m[None], states.shape[2]))
            out.append(model.head.logits(emb)[0].numpy())
    return np.stack(out)


def fit_stats_probe(feats: np.ndarray, labels: np.ndarray, c: float, seed: int = 0):
    """Standardise the per-layer stats and fit the L2 logistic regression: (mean, scale, classifier)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = feats.mean(axis=0), feats.std(axis=0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit((feats - mean) / scale, labels)
    return mean, scale, clf


def fit_probe(items: list[LowStates], labels: np.ndarray, c: float, seed: int = 0) -> ProbeHead:
    """Frozen-encoder probe: standardised per-layer stats -> L2 logistic regression (scikit-learn)."""
    depth, _, dim = items[0].states.shape
    head = ProbeHead(SECHeadConfig(dim=dim, num_states=depth))
    with torch.no_grad():
        feats = torch.cat([head.embedding(i.states.float()[:, None], i.mask[None]) for i in items]).numpy()
    return load_probe_fit(head, *fit_stats_probe(feats, labels, c, seed)).eval()


def load_probe_fit(head: ProbeHead, mean: np.ndarray, scale: np.ndarray, clf) -> ProbeHead:
    """Copy a ``fit_stats_probe`` result (standardisation + logistic regression) into a probe head."""
    with torch.no_grad():
        head.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        head.scale.copy_(torch.from_numpy(scale.astype(np.float32)))
        head.classify.weight.copy_(torch.from_numpy(clf.coef_.astype(np.float32)))
        head.classify.bias.copy_(torch.from_numpy(clf.intercept_.astype(np.float32)))
    return head
