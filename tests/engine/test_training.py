"""Training pieces on real data: corpora parsing, folds, determinism of a tiny SEC run."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from emostream.engine.asr import bundled_asr_dir
from emostream.engine.training.corpora import actor_folds, meld_lines, ravdess_clips
from emostream.engine.training.metrics import scores
from emostream.engine.training.sec_train import (SECTrainConfig, compute_low_states, log_mels, predict_whisper_sec,
                                                 train_whisper_sec)
from emostream.engine.training.union import ravdess_waveforms
from emostream.engine.whisper_encoder import WhisperEncoderStack


def test_folds_are_speaker_independent():
    folds = actor_folds(5)
    flat = [a for f in folds for a in f]
    assert sorted(flat) == list(range(1, 21)) and len(set(flat)) == 20


def test_scores():
    s = scores(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert s["wa"] == 0.75 and s["ua"] == 0.75


@pytest.mark.needs_data
def test_corpora_parse():
    clips = ravdess_clips()
    assert len(clips) == 1200 and {c.actor for c in clips} == set(range(1, 21))
    assert {c.label for c in clips} == {"neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"}
    test = meld_lines("test")
    assert len(test) == 2610 and all(line.text for line in test)


@pytest.mark.slow
@pytest.mark.needs_data
def test_tiny_sec_training_is_deterministic():
    clips = [c for c in ravdess_clips() if c.actor in (1, 2) and c.statement == 1][:12]
    labels = np.array([c.label_index for c in clips])
    cfg = SECTrainConfig(epochs=1, batch_size=4)
    base = WhisperEncoderStack.from_ct2(bundled_asr_dir())
    low = [compute_low_states(base, log_mels(ravdess_waveforms(clips), "mel"), cfg.tuned_from, "low")]
    runs = []
    for seed in (cfg.seed, cfg.seed, cfg.seed + 1):
        enc, head = train_whisper_sec(str(bundled_asr_dir()), low, labels, replace(cfg, seed=seed))
        runs.append(predict_whisper_sec(enc, head, low[0][:3], cfg.tuned_from))
    for a, b in zip(runs[0], runs[1]):
        assert np.array_equal(a, b)  # the same seed: bit for bit
    assert any(not np.array_equal(a, c) for a, c in zip(runs[0], runs[2]))  # and the seed is what decides it


def test_fusion_training_is_seeded_learns_and_gives_torch_its_threads_back():
    from emostream.engine.fusion import FusionConfig
    from emostream.engine.training.fusion_train import BranchRows, FusionTrainConfig, fusion_logits, train_fusion

    rng = np.random.default_rng(0)
    n, labels = 280, np.arange(280) % 7
    sec_logits = np.eye(7, dtype=np.float32)[labels] * 3 + rng.normal(size=(n, 7)).astype(np.float32)  # the voice knows
    rows = BranchRows(rng.normal(size=(n, 16)).astype(np.float32), sec_logits, rng.normal(size=(n, 8)).astype(np.float32),
                      rng.normal(size=(n, 7)).astype(np.float32), rng.random(n).astype(np.float32),
                      np.ones(n, np.float32), labels, np.zeros((n, 2), np.float32))
    fcfg, cfg = FusionConfig(sec_dim=16, text_dim=8), FusionTrainConfig(epochs=8)
    threads = torch.get_num_threads()
    first, again = (fusion_logits(train_fusion(rows, cfg, fcfg), rows) for _ in range(2))
    assert torch.get_num_threads() == threads
    assert np.array_equal(first, again)
    assert scores(labels, first.argmax(1))["ua"] > 0.9  # it learned to trust the informative branch


def test_cached_training_path_equals_inference_path(speech):
    """Fold metrics are computed from cached lower states; they must equal what classify computes."""
    from emostream.engine.bundle import Bundle
    from emostream.engine.recognizer import load_sec

    model = load_sec(Bundle.load())
    tuned_from = Bundle.load().manifest["sec"]["tuned_from"]
    base = WhisperEncoderStack.from_ct2(bundled_asr_dir())
    waves = list(speech.values())
    low = compute_low_states(base, log_mels(waves, "mel"), tuned_from, "low", noise_gate=model.noise_gate)
    emb, logits = predict_whisper_sec(model.encoder, model.head, low, tuned_from)
    for i, wave in enumerate(waves):
        with torch.no_grad():
            e, l = model(torch.from_numpy(wave)[None])
        # the cache stores lower states in fp16, so allow fp16-sized differences
        np.testing.assert_allclose(logits[i], l[0].numpy(), atol=0.05)
        assert int(np.argmax(logits[i])) == int(l[0].argmax())


def test_robust_training_features_equal_the_inference_path(speech):
    """The study's cached per-layer stats (trimmed like classify) give the shipped probe's exact logits."""
    from emostream.engine.bundle import Bundle
    from emostream.engine.recognizer import load_sec
    from emostream.engine.training.robust_data import StatsEncoder
    from emostream.engine.training.robustness import Variant
    from emostream.streaming.segmenter import trim_to_speech

    model = load_sec(Bundle.load())
    front_end = "trim" if model.noise_gate else "trim_peak"
    head = model.head
    cols = Variant("shipped", front_end, True, head.states).columns()
    encoder = StatsEncoder(str(bundled_asr_dir()))
    for wave in speech.values():
        padded = np.concatenate([np.zeros(12000, np.float32), wave, np.zeros(12000, np.float32)])
        stats = encoder(padded, (front_end,))[front_end][cols]
        z = (stats - head.mean.numpy()) / head.scale.numpy()
        logits = z @ head.classify.weight.detach().numpy().T + head.classify.bias.detach().numpy()
        with torch.no_grad():
            _, expected = model(torch.from_numpy(trim_to_speech(padded)[0])[None])
        np.testing.assert_allclose(logits, expected[0].numpy(), atol=2e-3, rtol=1e-3)
