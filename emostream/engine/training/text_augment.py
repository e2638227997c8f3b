"""Typed text -> text as Whisper would write it, so the TEC branch learns from words, not from marks.

What tiny.en writes for speech differs from what people type: "!" almost never (3 in 600 spoken
lines against 134 in their true text), no emoji, no ALL CAPS, no "sooo", no "[NAME]", numbers
as digits or words, disfluencies dropped, and now and then a word lost or changed. A branch
trained on typed text leans on exactly those marks; these transforms take them away in the
proportions ASR does, and ``asr_style`` draws one such rendering of a line.
"""

from __future__ import annotations

import re

import numpy as np

NAMES = ("Ross", "Rachel", "Monica", "Joey", "Chandler", "Phoebe", "Emma", "John", "Sarah", "Mike", "Anna", "David")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
FILLERS = re.compile(r"\b(?:um+|uh+|erm+|hmm+|uhm+)\b[,.]?\s*", re.I)
URL = re.compile(r"https?://\S+|www\.\S+|/?r/\w+|/?u/\w+")
NOT_SPOKEN = re.compile(r"[^\w\s'.,?!\-]")  # emoji, markup, symbols: nothing ASR would write
ELONGATED = re.compile(r"([a-zA-Z])\1{2,}")


def spoken_form(text: str, rng: np.random.Generator | None = None) -> str:
    """What of a typed line could have been *said*: masks filled, links, emoji and markup gone,
    repeated marks and letters collapsed, shouting in capitals unshouted. Deterministic without ``rng``."""
    text = re.sub(r"\[NAME\]", lambda _: NAMES[int(rng.integers(len(NAMES)))] if rng is not None else "Alex", text)
    text = URL.sub(" ", text).replace("&amp;", "and")
    text = NOT_SPOKEN.sub(" ", text)
    text = re.sub(r"([!?])[!?]+", r"\1", text)
    text = re.sub(r"\.{2,}", "...", text)
    text = ELONGATED.sub(r"\1\1", text)
    text = re.sub(r"\b([A-Z]{2,})\b", lambda m: m.group(1) if m.group(1) in ("I", "OK", "TV", "US", "UK")
                  else m.group(1).lower(), text)
    text = re.sub(r"\s+([.,?!])", r"\1", " ".join(text.split()))
    return text[:1].upper() + text[1:] if text else text


def _numbers(text: str, rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        return re.sub(r"\b(\d|1\d|20)\b", lambda m: NUMBER_WORDS[int(m.group(1))], text)
    lookup = {w: str(i) for i, w in enumerate(NUMBER_WORDS) if i >= 2}
    return re.sub(r"\b(" + "|".join(lookup) + r")\b", lambda m: lookup[m.group(1).lower()], text, flags=re.I)


def _word_error(words: list[str], rng: np.random.Generator) -> list[str]:
    """One small ASR slip: a short word dropped, a word doubled or two words merged."""
    if len(words) < 3:
        return words
    i = int(rng.integers(len(words)))
    kind = rng.random()
    if kind < 0.5 and len(words[i].strip(".,?!")) <= 4:
        return words[:i] + words[i + 1:]
    if kind < 0.75:
        return words[:i + 1] + [words[i].strip(".,?!").lower()] + words[i + 1:]
    if i + 1 < len(words):
        return words[:i] + [words[i].strip(".,?!") + words[i + 1].lower()] + words[i + 2:]
    return words


def asr_style(text: str, rng: np.random.Generator) -> str:
    """One seeded rendering of a typed line as a transcript. Proportions follow what tiny.en wrote
    for spoken MELD lines: "!" kept about 1 time in 40, sentence case and a final mark usually,
    now and then no punctuation or case at all."""
    text = spoken_form(text, rng)
    text = FILLERS.sub("", text)
    text = re.sub(r"!", lambda _: "!" if rng.random() < 0.025 else ".", text)
    text = re.sub(r"\.\.\.", lambda _: [".", ",", ""][int(rng.integers(3))], text)
    text = _numbers(text, rng)
    words = text.split()
    if rng.random() < 0.15:
        words = _word_error(words, rng)
    text = " ".join(words).strip()
    if not text:
        return text
    style = rng.random()
    if style < 0.2:  # no marks, no case: the raw word string
        return " ".join(re.sub(r"[.,?!]", " ", text).lower().split())
    text = text[:1].upper() + text[1:]
    if text[-1] not in ".?!":
        text += "?" if re.match(r"(?i)(what|why|how|who|where|when|is|are|do|does|did|can|could|would|will)\b",
                                text) and rng.random() < 0.7 else "."
    return text
