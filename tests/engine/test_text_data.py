"""Text training data: ASR-style renderings and the corpora (held-out MELD lines stay out)."""

from collections import Counter

import numpy as np
import pytest

from emostream.engine.training.metrics import wer_words
from emostream.engine.training.text_augment import asr_style, spoken_form


def test_spoken_form_removes_what_nobody_says():
    text = "OMG [NAME] this is SOOOO good!!! 😍 https://x.io /r/pics"
    out = spoken_form(text)
    assert "[NAME]" not in out and "http" not in out and "/r/" not in out and "😍" not in out
    assert "!!" not in out and "SOOOO" not in out and "soo" in out.lower()


def test_asr_style_takes_away_the_marks_asr_rarely_writes():
    rng = np.random.default_rng(0)
    lines = ["You're a genius!", "I can't believe it!!", "What are you doing here?", "Oh my god... no."] * 200
    out = [asr_style(t, rng) for t in lines]
    assert sum("!" in o for o in out) / len(out) < 0.05  # tiny.en: 3 in 600 lines
    assert sum(o == o.lower() and not any(c in o for c in ".,?!") for o in out) / len(out) > 0.1
    assert all(o.strip() for o in out)
    again = [asr_style(t, np.random.default_rng(0)) for t in lines[:1]]
    assert again[0] == out[0]  # seeded
    assert Counter(wer_words(o) for o in out[:800:4]).most_common(1)[0][0] == "you're a genius"


@pytest.mark.needs_data
def test_text_corpora_exclude_meld_heldout_lines_and_split_xed_by_words():
    from emostream.engine.training.text_corpora import (TEXT_CORPORA, balance_weights, meld_heldout_keys,
                                                        text_corpus, xed_lines)

    heldout = meld_heldout_keys()
    for corpus in ("xed", "goemotions"):
        for split in ("train", "dev", "test"):
            lines = text_corpus(corpus, split)
            assert lines and not any(wer_words(l.text) in heldout for l in lines)
    splits: dict[str, set[str]] = {}
    for line in xed_lines():
        splits.setdefault(wer_words(line.text), set()).add(line.split)
    assert all(len(s) == 1 for s in splits.values())  # duplicate lines never straddle splits
    train = [l for c in TEXT_CORPORA for l in text_corpus(c, "train")]
    w = balance_weights(train)
    mass = {c: w[[i for i, l in enumerate(train) if l.corpus == c]].sum() for c in TEXT_CORPORA}
    assert all(m == pytest.approx(1 / 3) for m in mass.values())
