"""SEC probes on the speaker-independent folds, scored under every evaluation condition.

Every variant is a frozen Whisper probe (standardised per-layer stats -> L2 logistic regression),
so variants differ only in the speech front end (``robust_data.FRONT_ENDS``), which layers are
read, and whether training sees the degraded copies. ``emostream train`` runs the shipped recipe;
experiments/robustness_study.py compares the variants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostream.engine.training.metrics import scores, summarize_folds
from emostream.engine.training.sec_train import fit_stats_probe

DIM = 384  # Whisper tiny.en width: each state contributes mean (DIM) + std (DIM)


@dataclass(frozen=True)
class Variant:
    name: str
    front_end: str  # robust_data.FRONT_ENDS
    multi_condition: bool  # train on the clean clips + the degraded training copies
    states: tuple[int, ...] = (0, 1, 2, 3, 4)  # 0 = the conv front end's output, 1-4 = the transformer layers

    def columns(self) -> np.ndarray:
        return np.concatenate([np.arange(s * 2 * DIM, (s + 1) * 2 * DIM) for s in self.states])


@dataclass
class FoldOutputs:
    """Out-of-fold probe outputs for every evaluation set (and the fold-wise scores)."""

    logits: dict[str, np.ndarray]  # set -> (clips, labels)
    embeddings: dict[str, np.ndarray]  # set -> (clips, features), only for the sets asked for
    folds: dict[str, list[dict]]  # set -> per-fold scores


def probe_folds(variant: Variant, clean: dict[str, np.ndarray], copies: list[dict[str, np.ndarray]],
                evals: dict[str, dict[str, np.ndarray]], labels: np.ndarray, actors: np.ndarray,
                folds: list[list[int]], c: float, seed: int = 0, keep_embeddings: tuple[str, ...] = (),
                extra: dict[str, np.ndarray] | None = None) -> tuple[FoldOutputs, list]:
    """Fit one probe per fold on the training actors, score every evaluation set on the held-out ones.

    ``extra``: other sets (e.g. spoken MELD lines) predicted by every fold's probe; returned per fold."""
    cols = variant.columns()
    sources = [clean] + (copies if variant.multi_condition else [])
    out = FoldOutputs({}, {}, {})
    per_fold_extra = []
    for fold in folds:
        te = np.flatnonzero(np.isin(actors, fold))
        tr = np.flatnonzero(~np.isin(actors, fold))
        x = np.concatenate([s[variant.front_end][tr][:, cols] for s in sources])
        y = np.tile(labels[tr], len(sources))
        mean, scale, clf = fit_stats_probe(x, y, c, seed)
        for name, feats in evals.items():
            z = (feats[variant.front_end][te][:, cols] - mean) / scale
            valid = np.isfinite(z).all(axis=1)  # NaN rows: the path published nothing for that clip
            logits = np.full((len(te), len(clf.classes_)), np.nan, np.float32)
            logits[valid] = clf.decision_function(z[valid])
            out.logits.setdefault(name, np.zeros((len(labels), logits.shape[1]), np.float32))[te] = logits
            if name in keep_embeddings:
                out.embeddings.setdefault(name, np.zeros((len(labels), len(cols)), np.float32))[te] = z
            pred = np.where(valid, np.nan_to_num(logits, nan=-np.inf).argmax(axis=1), -1)  # nothing = wrong
            out.folds.setdefault(name, []).append({"actors": fold, **scores(labels[te], pred)})
        per_fold_extra.append({k: ((v[:, cols] - mean) / scale, clf.decision_function((v[:, cols] - mean) / scale))
                               for k, v in (extra or {}).items()})
    return out, per_fold_extra


def summarize(folds: dict[str, list[dict]]) -> dict[str, dict]:
    table = {name: summarize_folds(f) for name, f in folds.items()}
    ua = [v["ua_mean"] for v in table.values()]
    return {"conditions": table, "mean_ua_over_conditions": float(np.mean(ua))}
