"""LocalAgreement-2 (whisper_streaming's policy) for partial transcripts.

Each partial re-decodes the utterance so far, and the last words of a hypothesis are often wrong
(a word cut in half, punctuation that moves). A word becomes *stable* once two consecutive
hypotheses agree on it and on everything before it; the stable prefix of an utterance only grows,
so a reader may act on it. Words are compared without case or punctuation ("door." = "door,").
"""

from __future__ import annotations

import re

_STRIP = re.compile(r"[^\w']+")


def _key(word: str) -> str:
    return _STRIP.sub("", word).lower()


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if _key(x) != _key(y):
            break
        n += 1
    return n


class LocalAgreement:
    """One stream's partial transcripts; ``update`` returns (stable, unstable) text."""

    def __init__(self) -> None:
        self.seq: int | None = None
        self.stable: list[str] = []
        self._previous: list[str] | None = None

    def update(self, seq: int, text: str) -> tuple[str, str]:
        words = text.split()
        if seq != self.seq:  # a new utterance starts from nothing
            self.seq, self.stable, self._previous = seq, [], None
        if self._previous is not None:
            agreed = _common_prefix(self._previous, words)
            if agreed > len(self.stable) and _common_prefix(self.stable, words) == len(self.stable):
                self.stable = self.stable + words[len(self.stable):agreed]  # earlier stable words keep their text
        self._previous = words
        return " ".join(self.stable), " ".join(words[len(self.stable):])
