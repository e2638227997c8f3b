"""A tiny seeded search on real features (espeak-ng speech through the shipped encoders, real ASR
transcripts): bit-identical when rerun; the derived and random cells train and predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emostream.engine.fusion.cell import CellConfig
from emostream.engine.training.fusion_features import SequenceFeatures, sequence_features
from emostream.engine.training.fusion_search import SearchConfig, predict, random_genotype, search, train_cell
from emostream.labels import LABEL_INDEX

LINES = (("This is the best day of my life, I am so happy!", "happy"),
         ("I miss her so much, everything feels empty and sad.", "sad"),
         ("Get out of my office right now.", "angry"),
         ("The meeting has been moved to Thursday afternoon.", "neutral"))


@pytest.fixture(scope="module")
def features(recognizer, speech, tmp_path_factory):
    from emostream.engine.training.speech_synth import VOICES, Voice, speak

    waves, words, confs, labels, groups = [], [], [], [], []
    for v, voice in enumerate(VOICES[:3]):
        for text, label in LINES:
            wave = speak(text, Voice(voice, 160 + 10 * v, 50))
            t = recognizer.transcribe(wave)
            waves.append(wave)
            words.append(t.text if v < 2 else "")  # one voice without words: zero-length text sequences
            confs.append(t.confidence if v < 2 else 0.0)
            labels.append(LABEL_INDEX[label])
            groups.append(f"espeak:{voice}")
    feats = sequence_features(recognizer, waves, words, confs, labels, groups)
    path = tmp_path_factory.mktemp("features") / "seq.npz"
    feats.save(path)
    return SequenceFeatures.load(path)


def test_features_round_trip_with_empty_transcripts(features):
    assert len(features) == 12
    assert sum(len(t) == 0 for t in features.text) == 4
    assert all(m.any() for m in features.speech_mask)
    assert features.speech[0].dtype == np.float16 and features.speech[0].shape[1] == 384


def test_tiny_search_is_seeded_and_bit_identical(features, tmp_path):
    cfg = SearchConfig(cell=CellConfig(d=32, heads=4, nodes=2, hidden=32), epochs=2, batch_size=4, seed=3)
    idx = np.arange(len(features))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g1, h1 = search(features, idx, cfg)
        g2, h2 = search(features, idx, cfg)
    finally:
        torch.set_num_threads(threads)
    assert g1 == g2 and h1 == h2  # every architecture weight of every epoch, exactly
    assert len(h1) == 2 and set(h1[-1]["edges"]) == {"0->1", "0->2", "1->2"}
    cell = train_cell(features, idx, g1, cfg, epochs=2)
    probs = predict(cell, features, idx)
    assert probs.shape == (12, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    rand = random_genotype(2, np.random.default_rng(0))
    assert predict(train_cell(features, idx, rand, cfg, epochs=1), features, idx).shape == (12, 7)
    from emostream.engine.training.search_run import merge, plot_cell, plot_history

    plot_cell(g1, tmp_path / "cell.png")
    plot_history(h1, tmp_path / "weights.png")
    assert all((tmp_path / n).read_bytes()[:4] == b"\x89PNG" for n in ("cell.png", "weights.png"))
    both = merge([features, features])
    assert len(both) == 24 and both.labels[12] == features.labels[0]
