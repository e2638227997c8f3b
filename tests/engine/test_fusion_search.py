"""A tiny seeded search on real features (espeak-ng speech through the shipped encoders, real ASR
transcripts): bit-identical when rerun; the derived and random cells train and predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emostream.engine.fusion.cell import CellConfig
from emostream.engine.training.fusion_features import SequenceFeatures, sequence_features
from emostream.engine.training.speech_synth import VOICES, Voice, speak
from emostream.engine.training.fusion_search import CONCAT, SearchConfig, predict, random_genotype, search, train_cell
from emostream.labels import LABEL_INDEX

LINES = (("This is the best day of my life, I am so happy!", "happy"),
         ("I miss her so much, everything feels empty and sad.", "sad"),
         ("Get out of my office right now.", "angry"),
         ("The meeting has been moved to Thursday afternoon.", "neutral"))


@pytest.fixture(scope="module")
def features(recognizer, speech, tmp_path_factory):
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
    feats = sequence_features(recognizer, waves, words, confs, labels, groups, tags=[f"voice={g}" for g in groups])
    path = tmp_path_factory.mktemp("features") / "seq.npz"
    feats.save(path)
    return SequenceFeatures.load(path)


def test_features_round_trip_with_empty_transcripts(features):
    assert len(features) == 12
    assert sum(len(t) == 0 for t in features.text) == 4
    assert all(m.any() for m in features.speech_mask)
    assert features.speech[0].dtype == np.float16 and features.speech[0].shape[1] == 384


def test_branch_outputs_are_cached_with_the_sequences(features, recognizer):
    """The cache keeps what the SEC probe is fitted on and what the TEC head said, per utterance."""
    assert features.sec_stats.shape == (12, 5 * 2 * 384)
    assert features.text_logits.shape == (12, 7) and features.text_emb.shape == (12, 384)
    assert (features.text_logits[8:] == 0).all()  # no transcript, no TEC answer
    # the TEC logits are the shipped text branch's own answer for that transcript
    words = recognizer.transcribe(speak(LINES[0][0], Voice(VOICES[0], 160, 50))).text
    np.testing.assert_allclose(features.text_logits[0], recognizer.text(words).logits, atol=2e-3)


def test_tiny_search_is_seeded_and_bit_identical(features, tmp_path):
    from emostream.engine.training.search_run import merge, plot_cell, plot_history, probe_logits

    cfg = SearchConfig(cell=CellConfig(d=32, heads=4, nodes=2, hidden=32), epochs=2, batch_size=4, seed=3)
    idx = np.arange(len(features))
    _, sec_logits = probe_logits(features, idx, c=0.003, seed=0)  # a real SEC probe on these clips' statistics
    assert sec_logits.shape == (12, 7)
    absent = [k for k in range(7) if k not in set(features.labels.tolist())]
    assert (sec_logits[:, absent] < sec_logits.max(1, keepdims=True) - 10).all()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g1, h1 = search(features, idx, sec_logits, cfg)
        g2, h2 = search(features, idx, sec_logits, cfg)
    finally:
        torch.set_num_threads(threads)
    assert g1 == g2 and h1 == h2  # every architecture weight of every epoch, exactly
    assert len(h1) == 2 and set(h1[-1]["edges"]) == {"0->1", "0->2", "1->2"}
    cell = train_cell(features, idx, sec_logits, g1, cfg, epochs=2)
    probs = predict(cell, features, idx, sec_logits)
    assert probs.shape == (12, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    trust = predict(cell, features, idx, sec_logits, trust=True)
    assert trust.shape == (12, 2) and (trust >= 0).all()
    rand = random_genotype(2, np.random.default_rng(0))
    assert predict(train_cell(features, idx, sec_logits, rand, cfg, epochs=1), features, idx, sec_logits).shape == (12, 7)
    concat = train_cell(features, idx, sec_logits, CONCAT, cfg, epochs=1)
    assert predict(concat, features, idx, sec_logits).shape == (12, 7)

    plot_cell(g1, tmp_path / "cell.png")
    plot_history(h1, tmp_path / "weights.png")
    assert all((tmp_path / n).read_bytes()[:4] == b"\x89PNG" for n in ("cell.png", "weights.png"))
    both = merge([features, features])
    assert len(both) == 24 and both.labels[12] == features.labels[0] and both.sec_stats.shape[0] == 24


def test_synthesizer_check_and_shipping_rule(features):
    from emostream.engine.training.search_run import (counterfactual_check, fixed_fusion, probe_logits,
                                                      shipping_verdict, synthesizer_check, table_markdown)

    idx = np.arange(len(features))
    sec_emb, sec_logits = probe_logits(features, idx, c=0.003, seed=0)
    cfg = SearchConfig(cell=CellConfig(d=32, heads=4, nodes=2, hidden=32), epochs=1, batch_size=4)
    g = random_genotype(2, np.random.default_rng(1))
    cell = train_cell(features, idx, sec_logits, g, cfg)
    # call the first voice a natural one: the check only needs two groups
    import dataclasses

    groups = features.groups.astype("U16")
    groups[:4] = "ravdess:01"
    features = dataclasses.replace(features, groups=groups)
    check = synthesizer_check(predict(cell, features, idx, sec_logits, trust=True), features, idx, sec_logits)
    assert 0.0 <= check["corpus_share_of_variance"] <= 1.0
    assert {v["n"] for v in check["by_corpus"].values()} == {4}  # the 4 rows without words are left out
    assert all(v["mean_log_trust_ratio"]["degraded"] is None for v in check["by_corpus"].values())
    swap = counterfactual_check({"cell": cell, "fixed": fixed_fusion(features, idx, sec_emb, sec_logits, 0)}, features,
                                idx[:4], idx[4:8], sec_emb, sec_logits, seed=0)
    for result in swap.values():
        assert result["pairs"] == 4 and len(result["mean_log_trust_ratio"]) == 4
        means = list(result["mean_log_trust_ratio"].values())
        assert result["word_effect_natural_voice"] == means[1] - means[0] and np.isfinite(means).all()

    def row(union_ua, rav_ua, meld_f1):
        return {"union": {"ua": [union_ua, 0]}, "ravdess": {"ua": [rav_ua, 0]},
                "meld_test": {"weighted_f1": [meld_f1, 0]}}
    assert shipping_verdict({"searched": row(0.50, 0.745, 0.45), "fixed_fusion": row(0.49, 0.75, 0.455)})["ship_searched"]
    assert not shipping_verdict({"searched": row(0.50, 0.73, 0.45), "fixed_fusion": row(0.49, 0.75, 0.45)})["ship_searched"]
    assert not shipping_verdict({"searched": row(0.49, 0.75, 0.45), "fixed_fusion": row(0.49, 0.75, 0.45)})["ship_searched"]
    full = {"ua": [0.5, 0.01], "wa": [0.5, 0.01], "weighted_f1": [0.5, 0.01]}
    table = {r: {s: full for s in ("ravdess", "meld_test", "union")} for r in
             ("sec_only", "tec_only", "fixed_fusion", "concat", "searched", "random")}
    table["searched"] = {**table["searched"], "parameters": 1000, "latency_ms": 1.5}
    table["random"] = {**table["random"], "parameters": [900.0, 50.0], "latency_ms": [1.2, 0.1]}
    md = table_markdown(table, 5)
    assert md.count("\n") == 8 and "random cells (n=5)" in md and "1.50" in md and "900 ± 50" in md
