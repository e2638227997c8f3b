"""Whisper encoder layers (transformers) driven directly, for clips shorter than 30 s.

transformers' ``WhisperEncoder.forward`` insists on 3000 input frames; here we run its
convolutions and layers ourselves on the real clip length, with weights converted from the
CTranslate2 ``model.bin`` that faster-whisper already uses, so the ASR and SEC share one download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

from emostream.engine.ct2_weights import read_ct2_variables

MAX_FRAMES = 1500  # encoder positions: 30 s


def _config_for(d_model: int, layers: int, heads: int) -> WhisperConfig:
    config = WhisperConfig(
        d_model=d_model,
        encoder_layers=layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model,
        num_mel_bins=80,
        max_source_positions=MAX_FRAMES,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    config._attn_implementation = "sdpa"
    return config


class WhisperEncoderStack(nn.Module):
    """log-mel (batch, 80, frames) -> hidden states of every layer, (layers+1, batch, frames/2, d)."""

    def __init__(self, d_model: int = 384, layers: int = 4, heads: int = 6) -> None:
        super().__init__()
        self.config = _config_for(d_model, layers, heads)
        self.conv1 = nn.Conv1d(80, d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(MAX_FRAMES, d_model))
        self.layers = nn.ModuleList(WhisperEncoderLayer(self.config) for _ in range(layers))
        self.layer_norm = nn.LayerNorm(d_model)

    @property
    def num_states(self) -> int:
        return len(self.layers) + 1

    def forward(self, mel: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack(self.run_layers([self.embed(mel)], 0, frame_mask))

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """Convolutional front end + positions: (batch, 80, T) -> (batch, ceil(T/2), d)."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        return x + self.positions[: x.shape[1]]

    def run_layers(self, states: list[torch.Tensor], start: int, frame_mask: torch.Tensor | None = None,
                   stop: int | None = None) -> list[torch.Tensor]:
        """Continue from ``states`` (the outputs of layers < start) through layers ``start..stop``.

        Training caches the frozen lower states and calls this for the fine-tuned top.
        """
        attn_mask = None
        if frame_mask is not None:  # (batch, frames) True = real frame
            attn_mask = torch.zeros(frame_mask.shape, dtype=states[-1].dtype).masked_fill(~frame_mask, -1e4)
            attn_mask = attn_mask[:, None, None, :]
        states = list(states)
        x = states[-1]
        last = len(self.layers) - 1
        for i in range(start, len(self.layers) if stop is None else stop):
            x = self.layers[i](x, attn_mask)
            states.append(self.layer_norm(x) if i == last else x)
        return states

    @classmethod
    def from_ct2(cls, model_dir: str | Path) -> "WhisperEncoderStack":
        """Build from a faster-whisper/CTranslate2 model directory (``model.bin``, float16 weights)."""
        v = {k[len("encoder/"):]: torch.from_numpy(a.astype(np.float32)) for k, a in
             read_ct2_variables(Path(model_dir) / "model.bin", prefix="encoder/").items()}
        d_model = v["conv1/bias"].shape[0]
        layers = sum(1 for k in v if k.endswith("self_attention/linear_1/bias"))
        heads = int(v["num_heads"].item()) if "num_heads" in v else d_model // 64
        model = cls(d_model, layers, heads)
        sd: dict[str, torch.Tensor] = {
            "conv1.weight": v["conv1/weight"], "conv1.bias": v["conv1/bias"],
            "conv2.weight": v["conv2/weight"], "conv2.bias": v["conv2/bias"],
            "positions": v["position_encodings/encodings"],
            "layer_norm.weight": v["layer_norm/gamma"], "layer_norm.bias": v["layer_norm/beta"],
        }
        for i in range(layers):
            p, q = f"layer_{i}/", f"layers.{i}."
            qkv_w, qkv_b = v[p + "self_attention/linear_0/weight"], v[p + "self_attention/linear_0/bias"]
            (wq, wk, wv), (bq, _, bv) = qkv_w.chunk(3), qkv_b.chunk(3)
            sd.update({
                q + "self_attn.q_proj.weight": wq, q + "self_attn.q_proj.bias": bq,
                q + "self_attn.k_proj.weight": wk,
                q + "self_attn.v_proj.weight": wv, q + "self_attn.v_proj.bias": bv,
                q + "self_attn.out_proj.weight": v[p + "self_attention/linear_1/weight"],
                q + "self_attn.out_proj.bias": v[p + "self_attention/linear_1/bias"],
                q + "self_attn_layer_norm.weight": v[p + "self_attention/layer_norm/gamma"],
                q + "self_attn_layer_norm.bias": v[p + "self_attention/layer_norm/beta"],
                q + "fc1.weight": v[p + "ffn/linear_0/weight"], q + "fc1.bias": v[p + "ffn/linear_0/bias"],
                q + "fc2.weight": v[p + "ffn/linear_1/weight"], q + "fc2.bias": v[p + "ffn/linear_1/bias"],
                q + "final_layer_norm.weight": v[p + "ffn/layer_norm/gamma"],
                q + "final_layer_norm.bias": v[p + "ffn/layer_norm/beta"],
            })
        model.load_state_dict(sd, strict=True)
        return model.eval()
