"""Fitting and judging the confidence: calibrators fitted by likelihood on out-of-fold outputs,
expected calibration error (15 equal-width bins), the share of very sure results, reliability
diagrams and accuracy against coverage (what a subscriber keeps when it withholds results under
a confidence threshold)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from emostream.engine.calibration import (CORRECTNESS_FEATURES, LABEL_FEATURES, SIGNALS, Calibrator,
                                          correctness_features, softmax)

log = logging.getLogger(__name__)

ECE_BINS = 15
THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class CalibratorKind:
    """One way to fit the calibrator; ``emostream train`` fits each on held-out rows and ships the
    one whose worst validation set is most honest."""

    name: str
    signal_temperature: bool = False  # the temperature depends on the signals (else one global temperature)
    correctness: tuple[str, ...] | None = None  # the correctness stage's features (None: no second stage)
    acted_share: float | None = None  # acted speech's share of the weight (None: every corpus the same)


CALIBRATOR_KINDS = (
    CalibratorKind("temperature"),
    CalibratorKind("signal temperature", signal_temperature=True),
    CalibratorKind("temperature + correctness", correctness=CORRECTNESS_FEATURES),
    CalibratorKind("signal temperature + correctness", signal_temperature=True, correctness=CORRECTNESS_FEATURES),
    CalibratorKind("temperature + correctness, acted = conversation", correctness=CORRECTNESS_FEATURES,
                   acted_share=0.5),
    CalibratorKind("temperature + correctness by label", correctness=(*CORRECTNESS_FEATURES, *LABEL_FEATURES)),
    CalibratorKind("temperature + correctness by label, acted = conversation",
                   correctness=(*CORRECTNESS_FEATURES, *LABEL_FEATURES), acted_share=0.5),
)


def fit_calibrator(logits: np.ndarray, labels: np.ndarray, signals: np.ndarray | None = None,
                   weights: np.ndarray | None = None, l2: float = 1e-2) -> Calibrator:
    """Minimum (weighted) negative log-likelihood; ``signals`` None fits one global temperature.
    ``weights`` let each corpus count the same however many rows it has."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    s = np.zeros((len(labels), len(SIGNALS))) if signals is None else np.asarray(signals, np.float64)
    free = len(SIGNALS) if signals is not None else 0

    def nll(params: np.ndarray) -> float:
        t = np.exp(params[0] + s @ np.concatenate([params[1:], np.zeros(len(SIGNALS) - free)]))
        z = logits / t[:, None]
        z = z - z.max(1, keepdims=True)
        logp = z[np.arange(len(labels)), labels] - np.log(np.exp(z).sum(1))
        return float(-(w * logp).sum() + l2 * np.sum(params[1:] ** 2))

    res = minimize(nll, np.zeros(1 + free), method="L-BFGS-B", bounds=[(-4, 4)] * (1 + free))
    weights_out = tuple(float(v) for v in np.concatenate([res.x[1:], np.zeros(len(SIGNALS) - free)]))
    return Calibrator(float(res.x[0]), weights_out)


def fit_correctness(calib: Calibrator, logits: np.ndarray, labels: np.ndarray, signals: np.ndarray,
                    weights: np.ndarray | None = None, features: tuple[str, ...] = CORRECTNESS_FEATURES
                    ) -> Calibrator:
    """Add the second stage: a (weighted) logistic regression of "the top label is right" on the
    tempered probabilities' ``features`` (names from ``calibration.KNOWN_FEATURES``)."""
    from sklearn.linear_model import LogisticRegression

    probs = calib.tempered(logits, signals)
    x = correctness_features(probs, signals, features)
    right = (probs.argmax(1) == np.asarray(labels)).astype(int)
    w = np.ones(len(right)) if weights is None else np.asarray(weights, np.float64)
    model = LogisticRegression(C=10.0, max_iter=2000).fit(x, right, sample_weight=w / w.mean())
    return Calibrator(calib.bias, calib.weights, (float(model.intercept_[0]), *map(float, model.coef_[0])), features)


def _corpus_of(name: str) -> str:
    return name.split(" ")[0]  # "RAVDESS clean" -> RAVDESS; "Kokoro MELD dev ..." -> Kokoro


def fit_kind(parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], kind: CalibratorKind) -> Calibrator:
    """Fit on several validation sets; every corpus weighs the same in all (RAVDESS's conditions
    share its part), so no corpus dominates however many rows it has; ``kind.acted_share`` gives
    acted speech (RAVDESS) that share and the spoken lines the rest."""
    names = list(parts)
    per_corpus = {c: sum(_corpus_of(n) == c for n in names) for c in map(_corpus_of, names)}
    corpora = sorted(per_corpus)
    share = {c: (kind.acted_share if c == "RAVDESS" else (1 - kind.acted_share) / (len(corpora) - 1))
             if kind.acted_share is not None and len(corpora) > 1 else 1.0 / len(corpora) for c in corpora}
    logits = np.concatenate([parts[n][0] for n in names])
    labels = np.concatenate([parts[n][1] for n in names])
    sig = np.concatenate([parts[n][2] for n in names])
    w = np.concatenate([np.full(len(parts[n][1]), share[_corpus_of(n)] / (len(parts[n][1]) * per_corpus[_corpus_of(n)]))
                        for n in names])
    calib = fit_calibrator(logits, labels, sig if kind.signal_temperature else None, w)
    return calib if kind.correctness is None else fit_correctness(calib, logits, labels, sig, w, kind.correctness)


def cross_fitted(parts: dict, kind: CalibratorKind) -> dict[str, np.ndarray]:
    """Calibrated probabilities of every validation set, each row calibrated by a calibrator that
    did not see its speaker (RAVDESS) or its line (spoken dev lines). ``parts``: name -> (logits,
    labels, signals, fold of each row); fold k of every set is held out together, so one
    calibrator per fold serves all sets."""
    out = {name: np.zeros(p[0].shape) for name, p in parts.items()}
    for k in np.unique(np.concatenate([p[3] for p in parts.values()])):
        calib = fit_kind({n: (lg[f != k], y[f != k], s[f != k]) for n, (lg, y, s, f) in parts.items()}, kind)
        for name, (logits, _, sig, fold_of) in parts.items():
            held = fold_of == k
            if held.any():
                out[name][held] = calib(logits[held], sig[held])
    return out


def choose_calibrator(valid_parts: dict) -> tuple[Calibrator, dict, dict[str, np.ndarray]]:
    """Choose among the calibrator kinds by cross-fitted validation ECE, then fit the chosen kind on
    every out-of-fold row; also returns the chosen kind's cross-fitted probabilities.

    ``valid_parts``: "<corpus> <set>" (acted speech is "RAVDESS ...") -> (out-of-fold logits, labels,
    signals, fold of each row). The choice minimises the *worst* set's ECE: a confidence is a promise
    to each subscriber, whether it hears acted speech, a noisy room or conversation (the mean over
    corpora let a kind under-state clean acted speech by 0.09 while conversation was within 0.05)."""
    out: dict = {"validation": {}}
    mean_ece, worst_ece, crossed = {}, {}, {}
    for kind in CALIBRATOR_KINDS:
        crossed[kind.name] = cross_fitted(valid_parts, kind)
        per = {name: confidence_report(crossed[kind.name][name], part[1]) for name, part in valid_parts.items()}
        out["validation"][kind.name] = per
        corpora = sorted({_corpus_of(n) for n in per})  # mean over corpora, each the mean of its sets
        mean_ece[kind.name] = float(np.mean([np.mean([v["ece"] for n, v in per.items() if _corpus_of(n) == c])
                                             for c in corpora]))
        worst_ece[kind.name] = float(max(v["ece"] for v in per.values()))
    out["validation"]["before"] = {name: confidence_report(softmax(p[0].astype(np.float64)), p[1])
                                   for name, p in valid_parts.items()}
    chosen = min(CALIBRATOR_KINDS, key=lambda k: (worst_ece[k.name], mean_ece[k.name]))
    calib = fit_kind({n: (p[0], p[1], p[2]) for n, p in valid_parts.items()}, chosen)
    out.update({"mean_validation_ece": mean_ece, "worst_validation_ece": worst_ece, "chosen": chosen.name,
                "chosen_by": "lowest worst-set cross-fitted validation ECE", "calibrator": calib.to_manifest(chosen.name)})
    log.info("calibration: %s (worst validation ECE %s)", chosen.name, worst_ece)
    return calib, out, crossed[chosen.name]


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top label, equal-width confidence bins."""
    conf, right = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    return float(sum(abs(right[idx == b].mean() - conf[idx == b].mean()) * (idx == b).mean()
                     for b in range(bins) if (idx == b).any()))


def coverage_curve(probs: np.ndarray, labels: np.ndarray, thresholds=THRESHOLDS) -> list[dict]:
    """Accuracy of the results kept when those under each confidence threshold are withheld."""
    conf, right = probs.max(1), probs.argmax(1) == labels
    return [{"threshold": t, "coverage": float((conf >= t).mean()),
             "accuracy": float(right[conf >= t].mean()) if (conf >= t).any() else float("nan")} for t in thresholds]


def confidence_report(probs: np.ndarray, labels: np.ndarray) -> dict:
    conf = probs.max(1)
    return {"n": int(len(labels)), "accuracy": float((probs.argmax(1) == labels).mean()),
            "mean_confidence": float(conf.mean()), "ece": ece(probs, labels),
            "share_above_0.9": float((conf > 0.9).mean()), "share_above_0.99": float((conf > 0.99).mean()),
            "coverage": coverage_curve(probs, labels)}


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per non-empty bin."""
    conf, right = probs.max(1), probs.argmax(1) == labels
    idx = np.clip(np.digitize(conf, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    return [(float(conf[idx == b].mean()), float(right[idx == b].mean()), int((idx == b).sum()))
            for b in range(bins) if (idx == b).any()]


def plot_reliability(sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, title: str) -> None:
    """sets: name -> (uncalibrated probs, calibrated probs, labels); one panel per set, plus the
    accuracy-against-coverage curves in the last panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(sets) + 1
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows), squeeze=False)
    flat = axes.ravel()
    for ax, (name, (before, after, labels)) in zip(flat, sets.items()):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        for probs, label, color in ((before, "before", "tab:red"), (after, "calibrated", "tab:blue")):
            pts = reliability(probs, labels)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=color, ms=3,
                    label=f"{label}: ECE {ece(probs, labels):.3f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    ax = flat[len(sets)]
    for i, (name, (_, after, labels)) in enumerate(sets.items()):
        curve = coverage_curve(after, labels, tuple(np.linspace(0, 0.95, 20)))
        ax.plot([c["coverage"] for c in curve], [c["accuracy"] for c in curve], color=plt.cm.tab10(i % 10),
                label=name, lw=1.2)
    ax.set_xlabel("coverage (share of results kept)")
    ax.set_ylabel("accuracy of kept results")
    ax.set_title("withhold results under a confidence threshold", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left")
    for ax in flat[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

