"""Candidate operations of the fusion cell: how speech adjusts a text-aligned sequence.

Every operation maps a text-aligned node ``x`` (batch, T_text, d) to the same shape, reading the
speech context: frames (batch, T_speech, d) with their mask and the masked-mean pooled speech
vector. Masks are True where a position is real. The text sequence always starts with a learned
summary token (see cell.py), so an empty transcript is a length-1 sequence and nothing divides by
zero; padded positions are kept at zero so they never leak into pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

OPS = ("zero", "identity", "text_to_speech_attention", "speech_to_text_attention", "speech_gate", "film",
       "concat_mlp")
POOLINGS = ("mean", "attentive")


@dataclass
class SpeechContext:
    frames: torch.Tensor  # (B, Ts, d)
    mask: torch.Tensor  # (B, Ts) bool
    pooled: torch.Tensor  # (B, d)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def _keep(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x * mask.unsqueeze(-1).to(x.dtype)


class Zero(nn.Module):
    def forward(self, x, x_mask, ctx: SpeechContext):
        return torch.zeros_like(x)


class Identity(nn.Module):
    def forward(self, x, x_mask, ctx: SpeechContext):
        return x


class CrossAttention(nn.Module):
    """Multi-head attention with a key mask, written out so the ONNX graph keeps lengths dynamic
    (nn.MultiheadAttention's traced reshapes bake in the example's lengths)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"model width {d} must divide into {heads} heads")
        self.heads, self.head_dim = heads, d // heads
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        split = (self.heads, self.head_dim)
        q = self.q(queries).unflatten(-1, split).transpose(1, 2)  # (B, h, Tq, dh)
        k = self.k(keys).unflatten(-1, split).transpose(1, 2)
        v = self.v(keys).unflatten(-1, split).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) * self.head_dim ** -0.5
        scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        mixed = torch.softmax(scores, dim=-1) @ v  # (B, h, Tq, dh)
        return self.out(mixed.transpose(1, 2).flatten(-2))


class TextToSpeechAttention(nn.Module):
    """Each text token asks the frames how it was said (text queries, speech keys/values)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attn = CrossAttention(d, heads)
        self.norm = nn.LayerNorm(d)

    def forward(self, x, x_mask, ctx: SpeechContext):
        return _keep(self.attn(self.norm(x), ctx.frames, ctx.mask), x_mask)


class SpeechToTextAttention(nn.Module):
    """Frames ask which words they carry; the answer, pooled over speech, shifts every token."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attn = CrossAttention(d, heads)
        self.norm = nn.LayerNorm(d)

    def forward(self, x, x_mask, ctx: SpeechContext):
        out = self.attn(ctx.frames, self.norm(x), x_mask)
        return _keep(masked_mean(out, ctx.mask).unsqueeze(1).expand_as(x), x_mask)


class SpeechGate(nn.Module):
    """Pooled speech opens or closes each text feature (sigmoid gate)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.gate = nn.Linear(d, d)

    def forward(self, x, x_mask, ctx: SpeechContext):
        return x * torch.sigmoid(self.gate(ctx.pooled)).unsqueeze(1)


class FiLM(nn.Module):
    """Pooled speech scales and shifts each text feature."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.film = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)  # starts as the identity

    def forward(self, x, x_mask, ctx: SpeechContext):
        gamma, beta = self.film(ctx.pooled).unsqueeze(1).chunk(2, dim=-1)
        return _keep((1 + gamma) * x + beta, x_mask)


class ConcatMLP(nn.Module):
    """Each token next to pooled speech, through a small MLP."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, x, x_mask, ctx: SpeechContext):
        s = ctx.pooled.unsqueeze(1).expand(-1, x.shape[1], -1)
        return _keep(self.mlp(torch.cat([x, s], dim=-1)), x_mask)


def make_op(name: str, d: int, heads: int = 4) -> nn.Module:
    if name not in OPS:
        raise ValueError(f"unknown fusion operation {name!r}; known: {', '.join(OPS)}")
    return {"zero": lambda: Zero(), "identity": lambda: Identity(),
            "text_to_speech_attention": lambda: TextToSpeechAttention(d, heads),
            "speech_to_text_attention": lambda: SpeechToTextAttention(d, heads),
            "speech_gate": lambda: SpeechGate(d), "film": lambda: FiLM(d), "concat_mlp": lambda: ConcatMLP(d)}[name]()


class MeanPool(nn.Module):
    def forward(self, x, x_mask):
        return masked_mean(x, x_mask)


class AttentivePool(nn.Module):
    """A learned query scores each real token; softmax over the real ones."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.score = nn.Linear(d, 1)

    def forward(self, x, x_mask):
        scores = self.score(x).squeeze(-1).masked_fill(~x_mask, torch.finfo(x.dtype).min)
        return (torch.softmax(scores, dim=-1).unsqueeze(-1) * x).sum(dim=1)


def make_pool(name: str, d: int) -> nn.Module:
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}; known: {', '.join(POOLINGS)}")
    return MeanPool() if name == "mean" else AttentivePool(d)
