"""Representation rows of the robustness study that need frames, not pooled statistics:
attentive pooling over the frozen encoder, and a light fine-tune of the top Whisper layer.

Both train on the same multi-condition data (clean + degraded training copies) and are scored on
the same speaker-independent folds and evaluation conditions as the probe variants, so their rows
sit in the same table. Hyperparameters are fixed in advance (no selection on the test actors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from emostream.engine.sec import AttentiveProbeHead, ProbeHead, SECHeadConfig
from emostream.engine.training.metrics import scores
from robust_frames import FrameSet
from emostream.engine.training.sec_train import (SECTrainConfig, _batch, fit_stats_probe, load_probe_fit,
                                                 predict_whisper_sec, train_whisper_sec)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttentiveConfig:
    hidden: int = 64
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3  # the frame scorer
    linear_lr: float = 1e-4  # the classifier, initialised from the probe
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    seed: int = 0


def _logits(items, head: AttentiveProbeHead, batch: int = 64) -> np.ndarray:
    """Logits of ``items`` in padded batches (the mask keeps padding out of every weight)."""
    out = []
    with torch.no_grad():
        for k in range(0, len(items), batch):
            x, _, speech = _batch(items[k:k + batch], 0.0)
            out.append(head.logits(head.embedding(x, speech)).numpy())
    return np.concatenate(out)


def train_attentive(sources: list[FrameSet], idx: np.ndarray, labels: np.ndarray, probe_feats: np.ndarray,
                    probe_c: float, cfg: AttentiveConfig) -> AttentiveProbeHead:
    """``sources``: clean + degraded copies; ``probe_feats``: their uniform-mask stats (rows in the same
    order, copies stacked) for the probe the head starts from."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    mean, scale, clf = fit_stats_probe(probe_feats, np.tile(labels, len(sources)), probe_c, cfg.seed)
    head = load_probe_fit(AttentiveProbeHead(SECHeadConfig(), hidden=cfg.hidden), mean, scale, clf)
    scorer = list(head.project.parameters()) + list(head.score.parameters())
    opt = torch.optim.AdamW([{"params": scorer, "lr": cfg.lr},
                             {"params": head.classify.parameters(), "lr": cfg.linear_lr}], weight_decay=cfg.weight_decay)
    pairs = np.array([(c, i) for c in range(len(sources)) for i in range(len(idx))])
    head.train()
    for _ in tqdm(range(cfg.epochs), desc="attentive pooling", unit="epoch", leave=False):
        pairs = pairs[rng.permutation(len(pairs))]
        for k in range(0, len(pairs), cfg.batch_size):
            batch = pairs[k:k + cfg.batch_size]
            x, _, speech = _batch([sources[c].clip(int(idx[i])) for c, i in batch], 0.0)
            loss = F.cross_entropy(head.logits(head.embedding(x, speech)), torch.from_numpy(labels[batch[:, 1]]),
                                   label_smoothing=cfg.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def attentive_folds(clean: FrameSet, copies: list[FrameSet], evals: dict[str, FrameSet], probe_stats: list[np.ndarray],
                    labels: np.ndarray, actors: np.ndarray, folds: list[list[int]], probe_c: float,
                    cfg: AttentiveConfig = AttentiveConfig()) -> dict[str, list[dict]]:
    """Per-fold scores of attentive pooling on every evaluation set. ``probe_stats``: the uniform-mask
    stats of clean + copies (``robust_data`` 'trim'), for the probe each fold starts from."""
    out: dict[str, list[dict]] = {}
    sources = [clean] + copies
    for fold in folds:
        te = np.flatnonzero(np.isin(actors, fold))
        tr = np.flatnonzero(~np.isin(actors, fold))
        head = train_attentive(sources, tr, labels[tr], np.concatenate([s[tr] for s in probe_stats]), probe_c, cfg)
        for name, fs in evals.items():
            out.setdefault(name, []).append({"actors": fold, **scores(labels[te], _logits(fs.clips(te), head).argmax(1))})
    return out


def finetune_folds(asr_dir: str, clean: FrameSet, copies: list[FrameSet], evals: dict[str, FrameSet],
                   labels: np.ndarray, actors: np.ndarray, folds: list[list[int]], cfg: SECTrainConfig,
                   probe_stats: list[np.ndarray] | None = None, probe_c: float = 0.003) -> dict[str, list[dict]]:
    """Per-fold scores of the Whisper layers ``cfg.tuned_from..`` fine-tuned on clean + degraded copies,
    with the weighted-layer pooling head (``--sec-head pooling``), or, given ``probe_stats`` (the
    uniform-mask stats of clean + copies), with the all-layer probe head fitted on them first."""
    out: dict[str, list[dict]] = {}
    upto = cfg.tuned_from + 1  # the frozen states the tuned layers start from
    for k, fold in enumerate(folds):
        te = np.flatnonzero(np.isin(actors, fold))
        tr = np.flatnonzero(~np.isin(actors, fold))
        train = [s.clips(tr, upto) for s in [clean] + copies]
        head = None
        if probe_stats is not None:
            head = load_probe_fit(ProbeHead(SECHeadConfig()), *fit_stats_probe(
                np.concatenate([s[tr] for s in probe_stats]), np.tile(labels[tr], len(probe_stats)), probe_c, cfg.seed))
        encoder, head = train_whisper_sec(asr_dir, train, labels[tr], cfg, desc=f"fine-tune fold {k + 1}", head=head)
        for name, fs in evals.items():
            _, logits = predict_whisper_sec(encoder, head, fs.clips(te, upto), cfg.tuned_from)
            out.setdefault(name, []).append({"actors": fold, **scores(labels[te], logits.argmax(1))})
    return out

