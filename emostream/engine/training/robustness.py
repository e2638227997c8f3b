"""The robustness study: SEC variants x evaluation conditions on the speaker-independent folds.

Every variant is a frozen Whisper probe (standardised per-layer stats -> L2 logistic regression),
so variants differ only in the speech front end (``robust_data.FRONT_ENDS``), which layers are
read, and whether training sees the degraded copies. Selection uses the mean UA over all
conditions (clean included) with a floor on clean, never clean alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


VARIANTS = (
    Variant("before: whole clip, peak mask, clean training", "raw", False),
    Variant("trimmed, peak mask, clean training", "trim_peak", False),
    Variant("trimmed, noise-floor mask, clean training", "trim", False),
    Variant("trimmed, noise-floor mask, multi-condition", "trim", True),
    Variant("  + middle layers 1-3 only", "trim", True, (1, 2, 3)),
    Variant("  + last layer only", "trim", True, (4,)),
    Variant("  + per-utterance mel normalisation (CMN)", "trim_cmn", True),
)


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


def select(results: dict[str, dict], clean_floor: float) -> str:
    """Best mean UA over conditions among the variants whose clean UA stays above the floor."""
    eligible = {k: v for k, v in results.items() if v["conditions"]["clean"]["ua_mean"] >= clean_floor}
    pool = eligible or results
    return max(pool, key=lambda k: pool[k]["mean_ua_over_conditions"])


def plot_ua_vs_snr(rows: dict[str, dict[str, float]], path: Path, title: str, highlight: str | None = None) -> None:
    """rows: system -> condition -> UA. Office-noise conditions on the x axis (clean at the right);
    ``highlight``: the shipped system, drawn bold and starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snrs = [0, 5, 10, 20, 30]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (system, ua) in enumerate(rows.items()):
        xs = [s for s in snrs if f"office {s} dB" in ua]
        ys = [ua[f"office {s} dB"] for s in xs]
        if "clean" in ua:
            xs, ys = xs + [40], ys + [ua["clean"]]
        shipped = system == highlight
        ax.plot(xs, ys, marker="o", color=plt.cm.tab10(i % 10), ls=("-", "--", ":")[i // 10 % 3],
                lw=3.0 if shipped else 1.4, ms=6 if shipped else 4, zorder=3 if shipped else 2,
                label=f"{system.strip()} ★ shipped" if shipped else system.strip())
    ax.set_xticks(snrs + [40], [f"{s}" for s in snrs] + ["clean"])
    ax.set_xlabel("office noise SNR (dB)")
    ax.set_ylabel("UA (7 classes, speaker-independent folds)")
    ax.axhline(1 / 7, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
