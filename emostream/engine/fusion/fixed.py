"""Fusion: SEC embedding + TEC embedding (+ ASR confidence) -> 7 probabilities, valence, arousal.

Each branch arrives as its embedding and its own logits. The fusion network sees both, plus
whether there is a transcript and how sure the ASR was. A missing or empty transcript zeroes the
whole text side and sets ``has_text`` to 0; training drops the text side at random so the network
learns to fall back on SEC, and the espeak-ng half of the training data (emotional words, flat
voice) teaches it to fall back on TEC when the voice carries nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from emostream.labels import LABELS


@dataclass(frozen=True)
class FusionConfig:
    sec_dim: int = 768
    text_dim: int = 384
    proj: int = 32
    hidden: int = 64
    dropout: float = 0.3
    num_labels: int = len(LABELS)
    use_embeddings: bool = True  # False: the network sees only the branches' log-probs and ASR confidence
    correction: bool = False  # True: add a free correction to the trust-weighted sum (lost UA on the folds)


class FusionClassifier(nn.Module):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.num_labels
        self.sec_proj = nn.Sequential(nn.LayerNorm(cfg.sec_dim), nn.Linear(cfg.sec_dim, cfg.proj), nn.GELU())
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, cfg.proj), nn.GELU())
        self.body = nn.Sequential(
            nn.Dropout(cfg.dropout), nn.Linear(2 * cfg.proj + 2 * n + 2, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout)
        )
        # Per-branch trust weights: the label logits are a gated sum of the branches' own log-probs,
        # so the network decides how far to believe each branch, not what the answer is. The optional
        # free correction (cfg.correction) lost 0.05 UA on RAVDESS folds and is off by default.
        self.trust = nn.Linear(cfg.hidden, 2)
        self.correction = nn.Linear(cfg.hidden, n)
        self.va = nn.Linear(cfg.hidden, 2)

    def forward(self, sec_emb: torch.Tensor, sec_logits: torch.Tensor, text_emb: torch.Tensor,
                text_logits: torch.Tensor, asr_confidence: torch.Tensor, has_text: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        trust, h, sec_lp, text_lp = self.trust_weights(sec_emb, sec_logits, text_emb, text_logits, asr_confidence,
                                                       has_text)
        logits = trust[:, :1] * sec_lp + trust[:, 1:] * text_lp
        if self.cfg.correction:
            logits = logits + self.correction(h)
        return logits, torch.tanh(self.va(h))

    def trust_weights(self, sec_emb: torch.Tensor, sec_logits: torch.Tensor, text_emb: torch.Tensor,
                      text_logits: torch.Tensor, asr_confidence: torch.Tensor, has_text: torch.Tensor
                      ) -> tuple[torch.Tensor, ...]:
        """(B, 2) trust in SEC and TEC, the hidden state, the branches' log-probs (text zeroed without words)."""
        has = has_text.reshape(-1, 1).to(sec_emb.dtype)
        sec_lp = torch.log_softmax(sec_logits, dim=-1)
        text_lp = torch.log_softmax(text_logits, dim=-1) * has
        conf = asr_confidence.reshape(-1, 1).to(sec_emb.dtype) * has
        if self.cfg.use_embeddings:
            sec_side, text_side = self.sec_proj(sec_emb), self.text_proj(text_emb) * has
        else:
            sec_side = text_side = torch.zeros(sec_emb.shape[0], self.cfg.proj, dtype=sec_emb.dtype)
        h = self.body(torch.cat([sec_side, text_side, sec_lp, text_lp, conf, has], dim=-1))
        return nn.functional.softplus(self.trust(h)), h, sec_lp, text_lp
