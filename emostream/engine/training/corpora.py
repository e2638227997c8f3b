"""The shared corpora (``../shared/data``): RAVDESS audio and MELD text, as labelled items."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emostream.labels import LABEL_INDEX, MELD_EMOTIONS, RAVDESS_EMOTIONS


def shared_data_dir() -> Path:
    """``$EMOSTREAM_DATA`` or ``../shared/data`` next to the repository (CI's layout)."""
    env = os.environ.get("EMOSTREAM_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


RAVDESS_STATEMENTS = {1: "Kids are talking by the door.", 2: "Dogs are sitting by the door."}


@dataclass(frozen=True)
class RavdessClip:
    path: Path
    actor: int
    label: str
    strong: bool
    statement: int

    @property
    def label_index(self) -> int:
        return LABEL_INDEX[self.label]

    @property
    def sentence(self) -> str:
        return RAVDESS_STATEMENTS[self.statement]


def ravdess_clips(root: Path | None = None) -> list[RavdessClip]:
    root = (root or shared_data_dir()) / "ravdess"
    if not root.is_dir():
        raise FileNotFoundError(f"RAVDESS not found at {root} (set EMOSTREAM_DATA or place ../shared/data)")
    clips = []
    for path in sorted(root.glob("Actor_*/*.flac")):
        _, _, emotion, intensity, statement, _, actor = path.stem.split("-")
        clips.append(RavdessClip(path, int(actor), RAVDESS_EMOTIONS[emotion], intensity == "02", int(statement)))
    return clips


def actor_folds(n_folds: int = 5, actors: int = 20) -> list[list[int]]:
    """Speaker-independent folds: consecutive actor ids, so every fold holds both sexes."""
    per = actors // n_folds
    return [list(range(1 + k * per, 1 + (k + 1) * per)) for k in range(n_folds)]


def fold_of_actors(actors: np.ndarray, folds: list[list[int]]) -> np.ndarray:
    """The index of the fold that holds each row's actor."""
    return np.array([next(k for k, fold in enumerate(folds) if a in fold) for a in actors])


@dataclass(frozen=True)
class MeldLine:
    split: str
    text: str
    label: str
    sentiment: str
    dialogue: int
    utterance: int

    @property
    def label_index(self) -> int:
        return LABEL_INDEX[self.label]


def meld_lines(split: str, root: Path | None = None) -> list[MeldLine]:
    path = (root or shared_data_dir()) / "meld" / f"{split}_sent_emo.csv"
    if not path.is_file():
        raise FileNotFoundError(f"MELD {split} not found at {path}")
    with path.open("r", encoding="utf-8", errors="replace", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        text = _clean(row["Utterance"])
        out.append(MeldLine(split, text, MELD_EMOTIONS[row["Emotion"]], row["Sentiment"],
                            int(row["Dialogue_ID"]), int(row["Utterance_ID"])))
    return out


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\ufffd": "'", "\u201c": '"', "\u201d": '"', "\u2014": " - ", "\u2026": "..."})


def _clean(text: str) -> str:
    return " ".join(text.translate(_QUOTES).split())
