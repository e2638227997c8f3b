"""Calibration: the fused logits -> probabilities whose confidence means what it says.

A dialogue system acts on ``confidence``; before calibration the fusion claimed > 0.99 on a third
of conversation lines while right on about one in three. Two stages, both fitted by ``emostream
train`` on out-of-fold outputs (held-out speakers, held-out lines) and shipped in the bundle:

1. a temperature that may depend on signals the recognizer already has (how sure each branch is,
   whether there are words, how sure the ASR was, whether the branches agree):
   ``T = exp(w · s + b)``; one global temperature is ``w = 0``;
2. optionally a *correctness model*: a logistic regression that predicts whether the top label is
   right from the tempered confidence, the margin to the runner-up and the same signals. It sets
   the top label's probability; the others keep their proportions. One temperature cannot make
   both acted speech (right 3 times in 4) and conversation (right 2 times in 5) honest when the
   fusion's errors are as sure as its hits; a model that sees which kind of input it has can.

The same function serves finals and partials.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emostream.labels import LABELS

SIGNALS = ("sec_max_prob", "text_max_prob", "has_text", "asr_confidence", "sec_text_agree")
CORRECTNESS_FEATURES = ("log_odds_top", "margin", *SIGNALS)
# which label is on top (neutral is the reference): the fusion's "disgusted" is right less often than its
# "angry" at the same tempered confidence
LABEL_FEATURES = tuple(f"top_is_{label}" for label in LABELS[1:])
KNOWN_FEATURES = (*CORRECTNESS_FEATURES, *LABEL_FEATURES)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def correctness_features(probs: np.ndarray, signals: np.ndarray,
                         names: tuple[str, ...] = CORRECTNESS_FEATURES) -> np.ndarray:
    """(N, len(names)) from tempered probabilities and the signals; ``names`` from ``KNOWN_FEATURES``."""
    top2 = np.sort(np.clip(probs, 1e-9, 1.0), axis=1)[:, -2:]
    log_odds = np.log(top2[:, 1]) - np.log1p(-np.minimum(top2[:, 1], 1 - 1e-9))
    signals = np.atleast_2d(signals)
    columns = {"log_odds_top": log_odds, "margin": np.log(top2[:, 1]) - np.log(top2[:, 0]),
               **{name: signals[:, i] for i, name in enumerate(SIGNALS)}}
    top = np.asarray(probs).argmax(1)
    columns.update({f"top_is_{label}": (top == i).astype(np.float64) for i, label in enumerate(LABELS) if i})
    return np.stack([columns[n] for n in names], axis=1)


def set_top_probability(probs: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Give each row's top label probability ``confidence``, the others their old proportions; the
    top label stays the top (the confidence is raised to the runner-up's share where it would fall
    under it)."""
    probs = np.asarray(probs, np.float64)
    top = probs.argmax(1)
    rows = np.arange(len(probs))
    p1 = probs[rows, top]
    p2 = np.sort(probs, axis=1)[:, -2]
    rest = np.maximum(1.0 - p1, 1e-12)
    conf = np.maximum(np.asarray(confidence, np.float64), p2 / (rest + p2) + 1e-6)  # strictly the top
    out = probs * ((1.0 - conf) / rest)[:, None]
    out[rows, top] = conf
    return out


def calibration_signals(sec_logits: np.ndarray, text_logits: np.ndarray, has_text: np.ndarray,
                        asr_confidence: np.ndarray) -> np.ndarray:
    """(N, len(SIGNALS)) per utterance; the text columns are 0 without a transcript."""
    sec_logits, text_logits = np.atleast_2d(sec_logits), np.atleast_2d(text_logits)
    has = np.asarray(has_text, np.float64).reshape(-1)
    sp, tp = softmax(sec_logits.astype(np.float64)), softmax(text_logits.astype(np.float64))
    agree = (sp.argmax(1) == tp.argmax(1)).astype(np.float64) * has
    return np.stack([sp.max(1), tp.max(1) * has, has, np.asarray(asr_confidence, np.float64).reshape(-1) * has, agree],
                    axis=1)


@dataclass(frozen=True)
class Calibrator:
    """``T = exp(bias + weights · signals)``; probabilities = softmax(logits / T); then, with a
    ``correctness`` model (intercept, then one weight per ``CORRECTNESS_FEATURES``), the top
    label's probability = sigmoid(correctness · [1, features]); ``features`` names them."""

    bias: float = 0.0
    weights: tuple[float, ...] = field(default_factory=lambda: (0.0,) * len(SIGNALS))
    correctness: tuple[float, ...] | None = None
    features: tuple[str, ...] = CORRECTNESS_FEATURES

    def temperature(self, signals: np.ndarray) -> np.ndarray:
        s = np.atleast_2d(signals)
        return np.exp(self.bias + s @ np.asarray(self.weights, np.float64))

    def tempered(self, logits: np.ndarray, signals: np.ndarray) -> np.ndarray:
        logits = np.atleast_2d(np.asarray(logits, np.float64))
        return softmax(logits / self.temperature(signals)[:, None])

    def __call__(self, logits: np.ndarray, signals: np.ndarray) -> np.ndarray:
        probs = self.tempered(logits, signals)
        if self.correctness is None:
            return probs
        w = np.asarray(self.correctness, np.float64)
        z = w[0] + correctness_features(probs, signals, self.features) @ w[1:]
        return set_top_probability(probs, 1.0 / (1.0 + np.exp(-z)))

    def to_manifest(self, kind: str = "signal temperature") -> dict:
        """``kind``: how it was fitted ("temperature": the weights are all 0), for people reading the bundle."""
        entry = {"kind": kind, "signals": list(SIGNALS), "bias": self.bias, "weights": list(self.weights)}
        if self.correctness is not None:
            entry.update(correctness_features=list(self.features), correctness=list(self.correctness))
        return entry

    @classmethod
    def from_manifest(cls, entry: dict | None) -> Calibrator:
        """The bundle's calibrator; none (a bundle from before calibration) is the identity."""
        if not entry:
            return cls()
        features = tuple(entry.get("correctness_features", CORRECTNESS_FEATURES))
        if list(entry.get("signals", SIGNALS)) != list(SIGNALS) or not set(features) <= set(KNOWN_FEATURES):
            raise ValueError(f"bundle calibration uses signals {entry.get('signals')} / {list(features)}, "
                             f"this code knows {SIGNALS} / {KNOWN_FEATURES}")
        correctness = tuple(float(w) for w in entry["correctness"]) if "correctness" in entry else None
        if correctness is not None and len(correctness) != len(features) + 1:
            raise ValueError(f"bundle calibration has {len(correctness)} correctness weights for {len(features)} features")
        return cls(float(entry["bias"]), tuple(float(w) for w in entry["weights"]), correctness, features)
