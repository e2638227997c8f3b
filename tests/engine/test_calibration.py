"""Confidence calibration: the fit recovers a known miscalibration, ECE measures it, the shipped
bundle carries a fitted calibrator and the recognizer's probabilities are the calibrated ones."""

import numpy as np
import pytest
import torch

from emostream.engine.calibration import SIGNALS, Calibrator, calibration_signals, softmax
from emostream.engine.training.calibration_fit import coverage_curve, ece, fit_calibrator


def _overconfident(n: int = 6000, scale: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z); the model reports scale * z, so it claims more than it knows."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.2, (n, 7))
    p = softmax(z)
    labels = np.array([rng.choice(7, p=row) for row in p])
    return scale * z, labels


def test_temperature_fit_recovers_a_known_overconfidence_and_lowers_ece():
    logits, labels = _overconfident()
    calib = fit_calibrator(logits, labels)
    assert np.exp(calib.bias) == pytest.approx(3.0, rel=0.1)
    before = ece(softmax(logits), labels)
    after = ece(calib(logits, np.zeros((len(labels), len(SIGNALS)))), labels)
    assert before > 0.15 and after < 0.03


def test_signal_temperature_learns_where_to_be_less_sure():
    """Half the rows are overconfident (scale 4), half honest (scale 1), and a signal tells them
    apart: the signal-dependent temperature calibrates both halves, one global temperature cannot."""
    a, ya = _overconfident(4000, 4.0, 1)
    b, yb = _overconfident(4000, 1.0, 2)
    logits, labels = np.concatenate([a, b]), np.concatenate([ya, yb])
    sig = np.zeros((len(labels), len(SIGNALS)))
    sig[:4000, SIGNALS.index("has_text")] = 1.0
    one = fit_calibrator(logits, labels)
    cond = fit_calibrator(logits, labels, sig, l2=0.0)
    for part in (slice(0, 4000), slice(4000, None)):
        assert ece(cond(logits[part], sig[part]), labels[part]) < 0.04
    assert max(ece(one(logits[p], sig[p]), labels[p]) for p in (slice(0, 4000), slice(4000, None))) > 0.06


def test_ece_and_coverage_on_a_hand_computed_case():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # bin 0.9: accuracy 0.5 vs 0.9 (weight 1/2); bin 0.6: accuracy 1.0 vs 0.6 (weight 1/2)
    assert ece(probs, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    curve = {c["threshold"]: c for c in coverage_curve(probs, labels, (0.0, 0.7))}
    assert curve[0.0]["coverage"] == 1.0 and curve[0.0]["accuracy"] == 0.75
    assert curve[0.7]["coverage"] == 0.5 and curve[0.7]["accuracy"] == 0.5


def test_manifest_round_trip_and_identity_for_old_bundles():
    c = Calibrator(0.3, (0.1, -0.2, 0.0, 0.5, 0.0))
    assert Calibrator.from_manifest(c.to_manifest()) == c
    logits = np.array([[2.0, 0.0, -1.0, 0, 0, 0, 0]])
    assert np.allclose(Calibrator.from_manifest(None)(logits, np.zeros((1, len(SIGNALS)))), softmax(logits))
    with pytest.raises(ValueError, match="signals"):
        Calibrator.from_manifest({**c.to_manifest(), "signals": ["something else"]})


def test_signals_ignore_the_text_side_without_words():
    s = calibration_signals(np.array([4.0, 0, 0, 0, 0, 0, 0]), np.array([0, 9.0, 0, 0, 0, 0, 0]), [0.0], [0.8])
    assert s[0, SIGNALS.index("has_text")] == 0 and s[0, SIGNALS.index("text_max_prob")] == 0
    assert s[0, SIGNALS.index("asr_confidence")] == 0 and s[0, SIGNALS.index("sec_max_prob")] > 0.8


def test_shipped_recognizer_publishes_calibrated_probabilities(speech):
    """The bundle carries a fitted calibrator, and fuse() returns its probabilities, not the raw softmax."""
    from emostream.engine.recognizer import Recognizer

    rec = Recognizer(sec_backend="torch")
    assert "calibration" in rec.bundle.manifest and rec.calibrator != Calibrator()
    wave = speech["happy"]
    sec, transcript = rec.sec(wave), rec.transcribe(wave)
    tec = rec.text(transcript.text)
    probs, _, _ = rec.fuse(sec, tec, transcript.confidence)
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))[None]  # noqa: E731
    has = float(tec.has_text)
    with torch.no_grad():
        logits, _ = rec.fusion(t(sec.embedding), t(sec.logits), t(tec.embedding), t(tec.logits),
                               t([transcript.confidence * has]), t([has]))
    raw = softmax(logits[0].numpy().astype(np.float64))
    sig = calibration_signals(sec.logits, tec.logits, [has], [transcript.confidence * has])
    assert np.allclose(probs, rec.calibrator(logits[0].numpy(), sig)[0], atol=1e-5)
    assert not np.allclose(probs, raw, atol=1e-3)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    rec.close()


def test_correctness_stage_fixes_what_one_temperature_cannot():
    """Two kinds of input with the same logits scale but different accuracy (acted speech right 3 in
    4, conversation 2 in 5), told apart by a signal: the correctness model makes each honest, and
    the top label always stays the top."""
    from emostream.engine.training.calibration_fit import fit_correctness

    rng = np.random.default_rng(3)
    n = 4000
    logits = rng.normal(0, 1, (2 * n, 7))
    top = logits.argmax(1)
    logits[np.arange(2 * n), top] += 8.0  # always very sure
    acted = np.arange(2 * n) < n
    right = np.where(acted, rng.random(2 * n) < 0.75, rng.random(2 * n) < 0.4)
    labels = np.where(right, top, (top + 1 + rng.integers(0, 6, 2 * n)) % 7)
    sig = np.zeros((2 * n, len(SIGNALS)))
    sig[~acted, SIGNALS.index("has_text")] = 1.0
    calib = fit_correctness(fit_calibrator(logits, labels), logits, labels, sig)
    probs = calib(logits, sig)
    assert np.allclose(probs.sum(1), 1) and (probs.argmax(1) == top).all()
    for part in (acted, ~acted):
        assert ece(probs[part], labels[part]) < 0.04
    assert Calibrator.from_manifest(calib.to_manifest("temperature + correctness")) == calib


def test_label_aware_correctness_makes_each_label_honest():
    """The fusion's "disgusted" is right less often than its "angry" at the same confidence: only a
    correctness model that knows the top label makes both honest; its manifest names its features
    and round-trips, and a bundle naming a feature this code does not know is refused."""
    from emostream.engine.calibration import CORRECTNESS_FEATURES, LABEL_FEATURES
    from emostream.engine.training.calibration_fit import fit_correctness

    rng = np.random.default_rng(5)
    n = 6000
    logits = rng.normal(0, 1, (n, 7))
    top = np.where(np.arange(n) % 2 == 0, 3, 5)  # angry / disgusted on top, equally sure
    logits[np.arange(n), top] += 6.0
    right = np.where(top == 3, rng.random(n) < 0.85, rng.random(n) < 0.35)
    labels = np.where(right, top, (top + 1 + rng.integers(0, 6, n)) % 7)
    sig = np.zeros((n, len(SIGNALS)))
    base = fit_calibrator(logits, labels)
    plain = fit_correctness(base, logits, labels, sig)
    aware = fit_correctness(base, logits, labels, sig, features=(*CORRECTNESS_FEATURES, *LABEL_FEATURES))
    for part in (top == 3, top == 5):
        assert ece(plain(logits, sig)[part], labels[part]) > 0.2
        assert ece(aware(logits, sig)[part], labels[part]) < 0.04
    assert (aware(logits, sig).argmax(1) == top).all()
    entry = aware.to_manifest("temperature + correctness by label")
    assert entry["correctness_features"][-1] == "top_is_surprised"
    assert Calibrator.from_manifest(entry) == aware
    with pytest.raises(ValueError, match="this code knows"):
        Calibrator.from_manifest({**entry, "correctness_features": [*entry["correctness_features"][:-1], "mood"]})


def test_a_low_calibrated_confidence_never_changes_the_label():
    """When the correctness model's confidence falls under the runner-up's share, the top label's
    probability is raised just above it: the label is still the fusion's, strictly the top."""
    from emostream.engine.calibration import set_top_probability

    probs = np.array([[0.05, 0.40, 0.35, 0.05, 0.05, 0.05, 0.05], [0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01]])
    out = set_top_probability(probs, np.array([0.10, 0.5]))
    assert np.allclose(out.sum(1), 1) and list(out.argmax(1)) == [1, 0]
    assert out[0, 1] > np.sort(out[0])[-2] and out[1, 0] == pytest.approx(0.5)
    assert out[1, 1] / out[1, 6] == pytest.approx(2.0)  # the others keep their proportions


def test_choose_calibrator_reports_every_kind_and_picks_the_most_honest_worst_set():
    """Acted speech right 3 in 4 and conversation 2 in 5, equally sure: every kind is cross-fitted
    and reported, the chosen one has the lowest worst-set ECE, and one temperature cannot win."""
    from emostream.engine.training.calibration_fit import CALIBRATOR_KINDS, choose_calibrator

    rng = np.random.default_rng(11)
    parts = {}
    for name, accuracy, has_text in (("RAVDESS clean", 0.75, 0.0), ("espeak-ng MELD dev", 0.4, 1.0)):
        n = 1500
        logits = rng.normal(0, 1, (n, 7))
        top = logits.argmax(1)
        logits[np.arange(n), top] += 6.0
        labels = np.where(rng.random(n) < accuracy, top, (top + 1 + rng.integers(0, 6, n)) % 7)
        sig = np.zeros((n, len(SIGNALS)))
        sig[:, SIGNALS.index("has_text")] = has_text
        parts[name] = (logits, labels, sig, rng.integers(0, 5, n))
    calib, report, crossed = choose_calibrator(parts)
    assert set(report["worst_validation_ece"]) == {k.name for k in CALIBRATOR_KINDS}
    worst = report["worst_validation_ece"]
    assert worst[report["chosen"]] == min(worst.values()) < 0.06 < worst["temperature"]
    assert calib.correctness is not None and report["calibrator"]["kind"] == report["chosen"]
    for name, (logits, labels, _, _) in parts.items():
        assert crossed[name].shape == logits.shape and np.allclose(crossed[name].sum(1), 1)
        assert ece(crossed[name], labels) == pytest.approx(report["validation"][report["chosen"]][name]["ece"])
