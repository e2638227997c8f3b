"""The text corpora the TEC branch learns from: MELD (TV dialogue), XED (movie subtitles) and
GoEmotions (Reddit, Ekman mapping), as labelled lines on the common label set.

Single-label lines only (a multi-label line has no one right answer for a softmax). XED has no
official split: a line's split is fixed by a hash of its words, so duplicate lines never straddle
train and test. Every XED and GoEmotions line whose words also occur in MELD dev or test is
removed, so no other corpus carries a MELD dev/test line into training. MELD's own splits are kept
as released: short lines such as "Yeah." occur in all three of them, as they do in conversation.
EmoBank gives valence/arousal for the words.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from emostream.engine.training.corpora import _clean, meld_lines, shared_data_dir
from emostream.engine.training.metrics import wer_words
from emostream.labels import LABEL_INDEX

TEXT_CORPORA = ("meld", "xed", "goemotions")

# XED's Plutchik ids -> common label (2 anticipation and 8 trust have no counterpart: dropped)
XED_LABELS = {1: "angry", 3: "disgusted", 4: "fearful", 5: "happy", 6: "sad", 7: "surprised"}
# GoEmotions' Ekman label names (ekman/labels.txt) -> common label
EKMAN_LABELS = {"anger": "angry", "disgust": "disgusted", "fear": "fearful", "joy": "happy",
                "neutral": "neutral", "sadness": "sad", "surprise": "surprised"}


@dataclass(frozen=True)
class TextLine:
    corpus: str
    split: str  # train | dev | test
    text: str
    label: str

    @property
    def label_index(self) -> int:
        return LABEL_INDEX[self.label]


def _hash_split(text: str) -> str:
    """Seedless, stable 80/10/10 split by the line's words (XED has none of its own)."""
    bucket = int(hashlib.md5(wer_words(text).encode()).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


@lru_cache(maxsize=1)
def meld_heldout_keys(root: Path | None = None) -> frozenset[str]:
    """The word forms of every MELD dev and test line: other corpora's copies of them are removed."""
    return frozenset(wer_words(l.text) for split in ("dev", "test") for l in meld_lines(split, root))


def xed_lines(root: Path | None = None) -> list[TextLine]:
    base = (root or shared_data_dir()) / "xed"
    if not (base / "en-annotated.tsv").is_file():
        raise FileNotFoundError(f"XED not found at {base}")
    rows: list[tuple[str, str]] = []
    with (base / "en-annotated.tsv").open(encoding="utf-8", errors="replace") as f:
        for line in f:
            text, _, ids = line.rstrip("\n").partition("\t")
            labels = {XED_LABELS[int(i)] for i in ids.split(",") if i.strip() and int(i) in XED_LABELS}
            if len(labels) == 1:
                rows.append((text, labels.pop()))
    with (base / "neu_en.txt").open(encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 2 and fields[1].strip():
                rows.append((fields[1], "neutral"))
    return _keep([TextLine("xed", _hash_split(_clean(t)), _clean(t), lab) for t, lab in rows], root)


def goemotions_lines(split: str, root: Path | None = None) -> list[TextLine]:
    base = (root or shared_data_dir()) / "goemotions" / "ekman"
    path = base / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"GoEmotions (Ekman) {split} not found at {path}")
    names = (base / "labels.txt").read_text().split()
    out = []
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 2 and "," not in row[1] and row[1].strip():
                out.append(TextLine("goemotions", split, _clean(row[0]), EKMAN_LABELS[names[int(row[1])]]))
    return _keep(out, root)


def _keep(lines: list[TextLine], root: Path | None) -> list[TextLine]:
    heldout = meld_heldout_keys(root)
    return [l for l in lines if wer_words(l.text) and wer_words(l.text) not in heldout]


def text_corpus(corpus: str, split: str, root: Path | None = None) -> list[TextLine]:
    if corpus == "meld":
        return [TextLine("meld", split, l.text, l.label) for l in meld_lines(split, root)]
    if corpus == "xed":
        return [l for l in xed_lines(root) if l.split == split]
    if corpus == "goemotions":
        return goemotions_lines(split, root)
    raise ValueError(f"unknown text corpus {corpus!r}; one of {TEXT_CORPORA}")


def balance_weights(lines: list[TextLine], class_power: float = 0.5) -> np.ndarray:
    """Sampling weights under which every corpus has the same total mass and, inside a corpus,
    class ``c`` gets mass ∝ n_c ** (1 - class_power): 0 keeps the corpus's own mix, 1 makes its
    classes equal (which would repeat GoEmotions' 500 disgusted lines 30 times as often as its
    happy ones). Sums to 1."""
    corpora = sorted({l.corpus for l in lines})
    w = np.zeros(len(lines))
    for corpus in corpora:
        idx = [i for i, l in enumerate(lines) if l.corpus == corpus]
        labels = np.array([lines[i].label_index for i in idx])
        counts = np.bincount(labels, minlength=len(LABEL_INDEX)).astype(float)
        w[idx] = counts[labels] ** (-class_power)
        w[idx] /= w[idx].sum() * len(corpora)
    return w


@dataclass(frozen=True)
class VALine:
    split: str
    text: str
    valence: float  # -1 .. 1 (EmoBank's 1..5 mapped linearly)
    arousal: float


def emobank_lines(root: Path | None = None) -> list[VALine]:
    path = (root or shared_data_dir()) / "emobank" / "emobank.csv"
    if not path.is_file():
        raise FileNotFoundError(f"EmoBank not found at {path}")
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        return [VALine(r["split"], _clean(r["text"]), (float(r["V"]) - 3) / 2, (float(r["A"]) - 3) / 2)
                for r in csv.DictReader(f) if r["text"].strip()]
