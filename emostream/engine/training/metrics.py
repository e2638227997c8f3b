"""The metrics every report uses: UA (mean per-class recall), WA (accuracy), weighted F1, confusion;
and the word form WER is computed on."""

from __future__ import annotations

import re

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from emostream.labels import LABELS


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    present = sorted(set(np.asarray(y_true).tolist()))
    return {
        "ua": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "wa": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
        "n": int(len(y_true)),
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> list[list[int]]:
    return confusion_matrix(y_true, y_pred, labels=list(range(len(LABELS)))).tolist()


def summarize_folds(folds: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("ua", "wa", "weighted_f1"):
        values = np.array([f[key] for f in folds])
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    return out


def wer_words(text: str) -> str:
    """Lower-cased words with punctuation removed (apostrophes kept): the text jiwer's WER compares."""
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())
