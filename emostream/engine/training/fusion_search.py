"""Differentiable architecture search (DARTS, first-order) for the fusion cell, on cached features.

The training part of the folds is split (seeded) into a weight set and a held-out architecture
set. Each step updates the network weights on a weight-set batch, then the architecture weights
(alpha per edge, beta for pooling) on an architecture-set batch, as in Liu et al. (2019), first-
order variant: the second-order unrolled gradient costs ~2x per step and the DARTS paper reports
a small difference on its benchmarks. Seeded and single-threaded deterministic on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from emostream.engine.fusion.cell import CellConfig, FusionCell
from emostream.engine.fusion.genotype import Genotype
from emostream.engine.training.fusion_features import SequenceFeatures, collate


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
    seed: int = 0


def _batches(idx: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(idx)
    return [order[i:i + size] for i in range(0, len(order), size)]


def _loss(cell: FusionCell, features: SequenceFeatures, idx: np.ndarray) -> torch.Tensor:
    speech, s_mask, text, t_mask, conf, labels = collate(features, idx)
    logits, _ = cell(speech, s_mask, text, t_mask, conf)
    return nn.functional.cross_entropy(logits, labels)


def search(features: SequenceFeatures, train_idx: np.ndarray, cfg: SearchConfig,
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
            _loss(cell, features, batch).backward()
            w_opt.step()
            a_opt.zero_grad()
            _loss(cell, features, arch_batches[i % len(arch_batches)]).backward()
            a_opt.step()
        weights = cell.architecture_weights()
        history.append({"epoch": epoch + 1, **weights})
        if progress:
            progress(epoch + 1, weights)
    return cell.derive(), history


def train_cell(features: SequenceFeatures, train_idx: np.ndarray, genotype: Genotype, cfg: SearchConfig,
               epochs: int | None = None) -> FusionCell:
    """Train a discrete cell from scratch (after search, or a random cell for the control)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    cell = FusionCell(cfg.cell, genotype)
    opt = torch.optim.AdamW(cell.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(epochs or cfg.epochs):
        cell.train()
        for batch in _batches(np.asarray(train_idx), cfg.batch_size, rng):
            opt.zero_grad()
            _loss(cell, features, batch).backward()
            opt.step()
    return cell.eval()


def predict(cell: FusionCell, features: SequenceFeatures, idx: np.ndarray, batch_size: int = 64) -> np.ndarray:
    cell.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(idx), batch_size):
            speech, s_mask, text, t_mask, conf, _ = collate(features, idx[i:i + batch_size])
            logits, _ = cell(speech, s_mask, text, t_mask, conf)
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
