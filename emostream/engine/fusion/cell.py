"""The searchable fusion network: SEC frames + TEC tokens -> DAG cell -> pooling -> heads.

Node 0 is the text sequence (a learned summary token, then the projected TEC tokens), so an
empty transcript is a one-position sequence. Intermediate node k sums its incoming edges, each an
operation from ops.OPS applied to an earlier node with the speech frames as context. The cell's
output is the mean of the intermediate nodes, pooled over the text positions, then joined with
the ASR confidence for the 7-class logits and valence/arousal.

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
        # the head sees the cell's output only (plus ASR confidence): speech reaches it through the
        # operations, so the search cannot route around the cell with a pooled-speech shortcut
        self.head = nn.Sequential(nn.Linear(d + 2, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout))
        self.classify = nn.Linear(cfg.hidden, cfg.num_labels)
        self.va = nn.Linear(cfg.hidden, 2)

    @property
    def searching(self) -> bool:
        return self.genotype is None

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas, self.betas] if self.searching else []

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, speech: torch.Tensor, speech_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                asr_confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """speech (B, Ts, speech_dim), speech_mask (B, Ts) bool, text (B, Tt, text_dim) with Tt >= 0,
        text_mask (B, Tt) bool, asr_confidence (B,) -> logits (B, labels), valence/arousal (B, 2)."""
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
        conf = asr_confidence.reshape(-1, 1).to(x0.dtype) * has_text
        h = self.head(torch.cat([pooled, conf, has_text], dim=-1))
        return self.classify(h), torch.tanh(self.va(h))

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
