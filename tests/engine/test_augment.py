"""The training/evaluation degradations on real speech: SNR reached, rooms decay, bands hold."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from emostream.engine.training.augment import (EVAL_CONDITIONS, NOISE_KINDS, NoiseBank, TrainingDegrader, channel,
                                               noise, reverb, snr_db, telephone_band)
from emostream.streaming.audio import SAMPLE_RATE


@pytest.fixture(scope="module")
def bank(tmp_path_factory, speech) -> NoiseBank:  # `speech` skips the module without espeak-ng (babble needs it)
    return NoiseBank(tmp_path_factory.mktemp("bank"), per_kind=1, rooms=2, seed=3).build(progress=False)


@pytest.fixture(scope="module")
def voice(speech) -> np.ndarray:
    x = np.concatenate([speech["happy"], speech["sad"]])
    return (x * 0.3 / np.abs(x).max()).astype(np.float32)  # headroom: 0 dB SNR must not need the clip guard


def test_bank_has_both_parts_and_is_reproducible(bank, tmp_path):
    for part in ("train", "test"):
        for kind in NOISE_KINDS + ("rir",):
            assert len(bank.paths(kind, part)) >= 1
    again = NoiseBank(tmp_path / "again", per_kind=1, rooms=2, seed=3).build(progress=False)
    a, _ = sf.read(str(bank.paths("hum", "test")[0]))
    b, _ = sf.read(str(again.paths("hum", "test")[0]))
    assert np.array_equal(a, b)
    c, _ = sf.read(str(bank.paths("hum", "train")[0]))
    assert not np.array_equal(a[: len(c)], c[: len(a)]), "train and test noise must differ"


@pytest.mark.parametrize("kind", ("colored",) + NOISE_KINDS)
@pytest.mark.parametrize("target", [0.0, 10.0, 25.0])
def test_noise_reaches_the_snr(bank, voice, kind, target):
    noisy = noise(bank, kind, "train" if kind != "office" else "test", target, target)(voice, SAMPLE_RATE)
    assert noisy.shape == voice.shape
    assert abs(snr_db(voice, noisy) - target) < 0.5


def test_room_impulse_responses_decay(bank):
    for part in ("train", "test"):
        for path in bank.paths("rir", part):
            ir, rate = sf.read(str(path))
            assert rate == SAMPLE_RATE
            energy = np.cumsum(ir[::-1] ** 2)[::-1]  # Schroeder backward integral
            edc = 10 * np.log10(energy / energy[0] + 1e-30)
            peak = int(np.argmax(np.abs(ir)))
            assert edc[peak + int(0.05 * rate)] < -3, "energy must fall after the direct sound"
            assert edc[-1] < -40
            assert np.all(np.diff(edc[np.isfinite(edc)]) <= 1e-9)


def test_reverb_smears_speech_in_time(bank, voice):
    wet = reverb(bank, "test")(voice, SAMPLE_RATE)
    assert wet.shape == voice.shape
    # energy in the pauses between words rises: the room keeps ringing
    frames = lambda x: np.sqrt(np.mean(x[: len(x) // 480 * 480].reshape(-1, 480) ** 2, axis=1))  # noqa: E731
    dry_f, wet_f = frames(voice), frames(wet / np.abs(wet).max() * np.abs(voice).max())
    quiet = dry_f < np.percentile(dry_f, 20)
    assert np.median(wet_f[quiet]) > 2 * np.median(dry_f[quiet])


def test_telephone_band_limits_hold(voice):
    rng = np.random.default_rng(0)
    white = (0.1 * rng.standard_normal(SAMPLE_RATE * 2)).astype(np.float32)
    for x in (white, voice):
        y = telephone_band()(x, SAMPLE_RATE)
        f, p_in = welch(x, SAMPLE_RATE, nperseg=1024)
        _, p_out = welch(y, SAMPLE_RATE, nperseg=1024)
        gain = 10 * np.log10((p_out + 1e-20) / (p_in + 1e-20))
        assert np.median(gain[(f > 600) & (f < 3000)]) > -3, "the pass band passes"
        if x is white:  # speech has too little energy at the band edges for a ratio to mean anything
            assert np.max(gain[f > 5000]) < -20, "above 5 kHz is cut"
            assert np.max(gain[(f > 0) & (f < 120)]) < -20, "below 120 Hz is cut"


def test_training_degrader_is_seeded_and_varied(bank, voice):
    degrade = TrainingDegrader(bank)
    a, b = degrade(voice, 7), degrade(voice, 7)
    assert np.array_equal(a, b)
    outs = [degrade(voice, s) for s in range(12)]
    assert len({round(float(np.std(o)), 6) for o in outs}) > 8
    for o in outs:
        assert o.dtype == np.float32 and np.isfinite(o).all() and np.abs(o).max() <= 0.99 + 1e-6
        assert 0.85 * len(voice) <= len(o) <= 1.15 * len(voice)  # speed perturbation within 0.9-1.1


def test_channel_effects_run_on_speech(voice):
    import random

    for seed in range(8):  # OneOf picks a different effect per draw; each must keep the signal usable
        random.seed(seed)
        np.random.seed(seed)
        y = channel()(voice, SAMPLE_RATE)
        assert np.isfinite(y).all() and abs(len(y) - len(voice)) < 0.05 * len(voice)
        assert np.corrcoef(y[: len(voice)][:len(y)], voice[: len(y)])[0, 1] > 0.3 or np.std(y) > 0


def test_eval_conditions_use_the_test_part_and_hit_their_snr(bank, voice):
    for cond in EVAL_CONDITIONS:
        y = cond.apply(bank, voice, seed=1)
        assert y.shape == voice.shape and np.isfinite(y).all()
        if cond.snr_db is not None and not cond.reverb:
            assert abs(snr_db(voice, y) - cond.snr_db) < 0.5
        if cond.name == "clean":
            assert np.array_equal(y, voice)
