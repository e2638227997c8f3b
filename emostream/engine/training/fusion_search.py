"""Differentiable architecture search (DARTS, first-order) for the fusion cell, on cached features.

The training part of the folds is split (seeded) into a weight set and a held-out architecture
set. Each step updates the network weights on a weight-set batch, then the architecture weights
(alpha per edge, beta for pooling) on an architecture-set batch, as in Liu et al. (2019), first-
order variant: the second-order unrolled gradient costs ~2x per step and the DARTS paper reports
a small difference on its benchmarks. Seeded and single-threaded deterministic on CPU.

Every model here also takes the SEC branch's logits, which depend on the fold (the SEC probe is
fitted on the fold's training actors), so they come in as an array aligned with the features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from emostream.engine.fusion.cell import CellConfig, ConcatFusion, FusionCell
from emostream.engine.fusion.genotype import Genotype
from emostream.engine.training.fusion_features import SequenceFeatures, collate
from emostream.labels import LABELS, VA_PROTOTYPES

CONCAT = "concat"  # train_cell's name for the plain-concatenation control


@dataclass(frozen=True)
class SearchConfig:
    cell: CellConfig = field(default_factory=CellConfig)
    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    arch_fraction: float = 0.3  # of the training indices, held out for the architecture updates
    text_dropout: float = 0.15  # share of training rows seen without their transcript (the SEC fallback)
    va_weight: float = 0.5
    seed: int = 0


def _batches(idx: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(idx)
    return [order[i:i + size] for i in range(0, len(order), size)]


_VA = torch.tensor([VA_PROTOTYPES[name] for name in LABELS], dtype=torch.float32) * 0.85


def _loss(model: nn.Module, features: SequenceFeatures, idx: np.ndarray, sec_logits: np.ndarray,
          cfg: SearchConfig, rng: np.random.Generator) -> torch.Tensor:
    speech, s_mask, text, t_mask, conf, sec, tec, labels = collate(features, idx, sec_logits)
    drop = torch.from_numpy(rng.random(len(idx)) < cfg.text_dropout)
    t_mask = t_mask & ~drop[:, None]
    logits, va = model(speech, s_mask, text * t_mask[..., None], t_mask, conf, sec, tec)
    return nn.functional.cross_entropy(logits, labels) + cfg.va_weight * nn.functional.mse_loss(va, _VA[labels])


def search(features: SequenceFeatures, train_idx: np.ndarray, sec_logits: np.ndarray, cfg: SearchConfig,
           progress: Callable[[int, dict], None] | None = None) -> tuple[Genotype, list[dict]]:
    """Returns the derived genotype and the architecture weights after every epoch."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    shuffled = rng.permutation(np.asarray(train_idx))
    n_arch = max(1, int(round(cfg.arch_fraction * len(shuffled))))
    arch_idx, weight_idx = shuffled[:n_arch], shuffled[n_arch:]
    cell = FusionCell(cfg.cell)
    w_opt = torch.optim.AdamW(cell.weight_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    a_opt = torch.optim.Adam(cell.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999),
                             weight_decay=cfg.arch_weight_decay)
    history = []
    for epoch in range(cfg.epochs):
        cell.train()
        arch_batches = _batches(arch_idx, cfg.batch_size, rng)
        for i, batch in enumerate(_batches(weight_idx, cfg.batch_size, rng)):
            w_opt.zero_grad()
            _loss(cell, features, batch, sec_logits, cfg, rng).backward()
            w_opt.step()
            a_opt.zero_grad()
            _loss(cell, features, arch_batches[i % len(arch_batches)], sec_logits, cfg, rng).backward()
            a_opt.step()
        weights = cell.architecture_weights()
        history.append({"epoch": epoch + 1, **weights})
        if progress:
            progress(epoch + 1, weights)
    return cell.derive(), history


def train_cell(features: SequenceFeatures, train_idx: np.ndarray, sec_logits: np.ndarray,
               genotype: Genotype | str, cfg: SearchConfig, epochs: int | None = None) -> nn.Module:
    """Train a discrete cell from scratch (after search, or a random cell for the control), or the
    plain-concatenation control (``genotype=CONCAT``), with the same schedule."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = ConcatFusion(cfg.cell) if genotype == CONCAT else FusionCell(cfg.cell, genotype)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(epochs or cfg.epochs):
        model.train()
        for batch in _batches(np.asarray(train_idx), cfg.batch_size, rng):
            opt.zero_grad()
            _loss(model, features, batch, sec_logits, cfg, rng).backward()
            opt.step()
    return model.eval()


def predict(model: nn.Module, features: SequenceFeatures, idx: np.ndarray, sec_logits: np.ndarray,
            batch_size: int = 64, trust: bool = False) -> np.ndarray:
    """Probabilities (N, labels); with ``trust`` the (N, 2) trust in SEC and TEC instead."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(idx), batch_size):
            speech, s_mask, text, t_mask, conf, sec, tec, _ = collate(features, idx[i:i + batch_size], sec_logits)
            if trust:
                fused, has_text = model.fuse(speech, s_mask, text, t_mask)
                out.append(model.head.trust_weights(fused, sec, tec, conf, has_text)[0].numpy())
            else:
                logits, _ = model(speech, s_mask, text, t_mask, conf, sec, tec)
                out.append(torch.softmax(logits, -1).numpy())
    return np.concatenate(out)


def random_genotype(nodes: int, rng: np.random.Generator, edges_per_node: int = 2) -> Genotype:
    """A cell drawn uniformly from the same space (the control the search must beat)."""
    from emostream.engine.fusion.genotype import Edge
    from emostream.engine.fusion.ops import OPS, POOLINGS

    ops = [o for o in OPS if o != "zero"]
    out = []
    for k in range(1, nodes + 1):
        sources = sorted(rng.choice(k, size=min(k, edges_per_node), replace=False).tolist())
        out.append(tuple(Edge(int(j), ops[int(rng.integers(len(ops)))]) for j in sources))
    return Genotype(tuple(out), POOLINGS[int(rng.integers(len(POOLINGS)))])
