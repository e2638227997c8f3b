"""The searchable fusion network: SEC frames + TEC tokens -> DAG cell -> pooling -> trust head.

Node 0 is the text sequence (a learned summary token, then the projected TEC tokens), so an
empty transcript is a one-position sequence. Intermediate node k sums its incoming edges, each an
operation from ops.OPS applied to an earlier node with the speech frames (averaged over
``frame_stride`` frames, 80 ms by default) as context. The cell's output is the mean of the
intermediate nodes, pooled over the text positions.

The head is the engine fusion's: the 7-class logits are a trust-weighted sum of the two branches'
own log-probabilities, and the cell decides the trust. So the searched part is exactly "how speech
cues adjust text cues" — how far to believe each perspective for this utterance — and every
variant compared in the evidence table (fixed fusion, concatenation, random and searched cells)
differs only in what the trust is computed from.

With a ``Genotype`` the cell is discrete (what ships and exports to ONNX); without one every edge
is a DARTS mixed operation weighted by softmax(alpha), and pooling by softmax(beta).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from emostream.engine.fusion.genotype import Edge, Genotype
from emostream.engine.fusion.ops import OPS, POOLINGS, SpeechContext, make_op, make_pool, masked_mean
from emostream.labels import LABELS


@dataclass(frozen=True)
class CellConfig:
    speech_dim: int = 384
    text_dim: int = 384
    d: int = 64
    heads: int = 4
    nodes: int = 3
    hidden: int = 64
    dropout: float = 0.2
    num_labels: int = len(LABELS)
    frame_stride: int = 4  # Whisper frames are 20 ms; attention over 80 ms steps costs 4x less


def pool_frames(frames: torch.Tensor, mask: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked average over non-overlapping windows of ``stride`` frames; a window is real if any
    frame in it is. (The divisor of avg_pool cancels in the ratio, so partial windows are exact.)"""
    if stride == 1:
        return frames, mask
    m = mask.unsqueeze(1).to(frames.dtype)
    total = nn.functional.avg_pool1d(frames.transpose(1, 2) * m, stride, stride, ceil_mode=True)
    count = nn.functional.avg_pool1d(m, stride, stride, ceil_mode=True)
    pooled = (total / count.clamp(min=1e-6)).transpose(1, 2)
    return pooled * (count.transpose(1, 2) > 0).to(frames.dtype), count[:, 0] > 0


class TrustHead(nn.Module):
    """Fused representation + the branches' log-probs -> trust per branch -> logits, V/A.

    The engine fusion's rule (fixed.py): logits = trust_sec * log p_sec + trust_text * log p_text,
    so the network decides how far to believe each branch, never what the answer is.
    """

    def __init__(self, d: int, hidden: int, dropout: float, num_labels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d + 2 * num_labels + 2, hidden), nn.GELU(), nn.Dropout(dropout))
        self.trust = nn.Linear(hidden, 2)
        self.va = nn.Linear(hidden, 2)

    def forward(self, fused: torch.Tensor, sec_logits: torch.Tensor, text_logits: torch.Tensor,
                asr_confidence: torch.Tensor, has_text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trust, h, sec_lp, text_lp = self.trust_weights(fused, sec_logits, text_logits, asr_confidence, has_text)
        return trust[:, :1] * sec_lp + trust[:, 1:] * text_lp, torch.tanh(self.va(h))

    def trust_weights(self, fused: torch.Tensor, sec_logits: torch.Tensor, text_logits: torch.Tensor,
                      asr_confidence: torch.Tensor, has_text: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, 2) trust in SEC and TEC (what the synthesizer check reads), the hidden state, the log-probs."""
        sec_lp = torch.log_softmax(sec_logits, dim=-1)
        text_lp = torch.log_softmax(text_logits, dim=-1) * has_text
        conf = asr_confidence.reshape(-1, 1).to(fused.dtype) * has_text
        h = self.body(torch.cat([fused, sec_lp, text_lp, conf, has_text], dim=-1))
        return nn.functional.softplus(self.trust(h)), h, sec_lp, text_lp


# "zero" stays in the space (a derived cell may drop an edge by keeping only the top edges per node)
# but not in the mixed edges: in the first search every edge collapsed onto it (weights 0.87-0.93),
# the known DARTS failure, which left the derived ops to near-uniform leftovers.
SEARCH_OPS = tuple(o for o in OPS if o != "zero")


class MixedEdge(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, d, heads) for name in SEARCH_OPS)

    def forward(self, x, x_mask, ctx, weights):
        return sum(w * op(x, x_mask, ctx) for w, op in zip(weights, self.ops))


class FusionCell(nn.Module):
    def __init__(self, cfg: CellConfig, genotype: Genotype | None = None) -> None:
        super().__init__()
        self.cfg, self.genotype = cfg, genotype
        d = cfg.d
        self.speech_proj = nn.Sequential(nn.LayerNorm(cfg.speech_dim), nn.Linear(cfg.speech_dim, d))
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
        self.summary = nn.Parameter(torch.zeros(1, 1, d))
        # sources of each intermediate node's incoming edges, in self.edges order
        self.node_sources = ([list(range(k)) for k in range(1, cfg.nodes + 1)] if genotype is None
                             else [[e.source for e in edges] for edges in genotype.nodes])
        if genotype is None:
            self.edges = nn.ModuleList(MixedEdge(d, cfg.heads) for sources in self.node_sources for _ in sources)
            self.alphas = nn.Parameter(1e-3 * torch.randn(len(self.edges), len(SEARCH_OPS)))
            self.pools = nn.ModuleList(make_pool(p, d) for p in POOLINGS)
            self.betas = nn.Parameter(torch.zeros(len(POOLINGS)))
        else:
            self.edges = nn.ModuleList(make_op(e.op, d, cfg.heads) for edges in genotype.nodes for e in edges)
            self.pool = make_pool(genotype.pooling, d)
        # the head sees the cell's output and the branches' answers, never pooled speech directly:
        # speech reaches the trust only through the operations, so the search cannot route around
        # the cell with a pooled-speech shortcut
        self.head = TrustHead(d, cfg.hidden, cfg.dropout, cfg.num_labels)

    @property
    def searching(self) -> bool:
        return self.genotype is None

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas, self.betas] if self.searching else []

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, speech: torch.Tensor, speech_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                asr_confidence: torch.Tensor, sec_logits: torch.Tensor, text_logits: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """speech (B, Ts, speech_dim), speech_mask (B, Ts) bool, text (B, Tt, text_dim) with Tt >= 0,
        text_mask (B, Tt) bool, asr_confidence (B,), the branches' logits (B, labels) each
        -> logits (B, labels), valence/arousal (B, 2)."""
        pooled, has_text = self.fuse(speech, speech_mask, text, text_mask)
        return self.head(pooled, sec_logits, text_logits, asr_confidence, has_text)

    def fuse(self, speech: torch.Tensor, speech_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cell proper: (B, d) fused representation and (B, 1) has-text flag."""
        speech, speech_mask = pool_frames(speech, speech_mask, self.cfg.frame_stride)
        frames = self.speech_proj(speech)
        ctx = SpeechContext(frames, speech_mask, masked_mean(frames, speech_mask))
        batch = speech.shape[0]
        x0 = torch.cat([self.summary.expand(batch, -1, -1), self.text_proj(text)], dim=1)
        mask = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=speech.device), text_mask], dim=1)
        x0 = x0 * mask.unsqueeze(-1).to(x0.dtype)
        has_text = text_mask.any(dim=1, keepdim=True).to(x0.dtype)
        weights = torch.softmax(self.alphas, dim=-1) if self.searching else None
        states, i = [x0], 0
        for sources in self.node_sources:
            node = 0
            for j in sources:
                extra = (weights[i],) if self.searching else ()  # a mixed edge also takes its op weights
                node = node + self.edges[i](states[j], mask, ctx, *extra)
                i += 1
            states.append(node)
        out = torch.stack(states[1:]).mean(dim=0)
        if self.searching:
            pooled = sum(w * pool(out, mask) for w, pool in zip(torch.softmax(self.betas, dim=-1), self.pools))
        else:
            pooled = self.pool(out, mask)
        return pooled, has_text

    def derive(self, edges_per_node: int = 2) -> Genotype:
        """DARTS's rule: per node keep the strongest incoming edges, each with its best non-zero op."""
        if not self.searching:
            return self.genotype
        weights = torch.softmax(self.alphas.detach(), dim=-1)
        nodes, i = [], 0
        for sources in self.node_sources:
            candidates = []
            for j in sources:
                best = int(torch.argmax(weights[i]))
                candidates.append((float(weights[i][best]), Edge(j, SEARCH_OPS[best])))
                i += 1
            candidates.sort(key=lambda c: -c[0])
            nodes.append(tuple(sorted((e for _, e in candidates[:edges_per_node]), key=lambda e: e.source)))
        pooling = POOLINGS[int(torch.argmax(self.betas.detach()))]
        return Genotype(tuple(nodes), pooling)

    def architecture_weights(self) -> dict:
        """softmax(alpha) per edge and softmax(beta), for reports and plots."""
        if not self.searching:
            return {}
        w = torch.softmax(self.alphas.detach(), dim=-1)
        names = [f"{j}->{k}" for k, sources in enumerate(self.node_sources, start=1) for j in sources]
        return {"edges": {n: dict(zip(SEARCH_OPS, map(float, row))) for n, row in zip(names, w)},
                "pooling": dict(zip(POOLINGS, map(float, torch.softmax(self.betas.detach(), dim=-1))))}


class ConcatFusion(nn.Module):
    """The plain-concatenation control: masked-mean speech frames and text tokens, concatenated and
    projected, into the same trust head as the cells (same inputs, no cell)."""

    def __init__(self, cfg: CellConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Sequential(nn.LayerNorm(cfg.speech_dim + cfg.text_dim), nn.Linear(cfg.speech_dim + cfg.text_dim,
                                                                                        cfg.d), nn.GELU())
        self.head = TrustHead(cfg.d, cfg.hidden, cfg.dropout, cfg.num_labels)

    def fuse(self, speech, speech_mask, text, text_mask):
        has_text = text_mask.any(dim=1, keepdim=True).to(speech.dtype)
        return self.proj(torch.cat([masked_mean(speech, speech_mask), masked_mean(text, text_mask)], -1)), has_text

    def forward(self, speech, speech_mask, text, text_mask, asr_confidence, sec_logits, text_logits):
        fused, has_text = self.fuse(speech, speech_mask, text, text_mask)
        return self.head(fused, sec_logits, text_logits, asr_confidence, has_text)
