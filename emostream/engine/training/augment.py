"""Waveform augmentation for SEC training: speed, gain, additive noise, synthetic reverberation.

Seeded per call so a feature cache built from it is reproducible.
"""

from __future__ import annotations

import numpy as np
import soxr

from emostream.streaming.audio import SAMPLE_RATE


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Kaldi-style speed perturbation (tempo and pitch together)."""
    return soxr.resample(x, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Pink-ish noise (white noise through a one-pole low-pass) at a given SNR."""
    from scipy.signal import lfilter

    white = rng.standard_normal(x.size)
    pink = lfilter([0.05], [1, -0.95], white).astype(np.float32)
    signal_power = float(np.mean(x**2)) + 1e-12
    noise_power = float(np.mean(pink**2)) + 1e-12
    return (x + pink * np.sqrt(signal_power / noise_power / 10 ** (snr_db / 10))).astype(np.float32)


def reverberate(x: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with an exponentially decaying noise impulse response (a synthetic room)."""
    from scipy.signal import fftconvolve

    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0
    y = fftconvolve(x, ir)[: x.size]
    return (y * (np.abs(x).max() / (np.abs(y).max() + 1e-9))).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random draw of the training augmentations."""
    y = speed(x, float(rng.choice([0.9, 0.95, 1.05, 1.1])))
    if rng.random() < 0.5:
        y = reverberate(y, float(rng.uniform(0.2, 0.6)), rng)
    y = add_noise(y, float(rng.uniform(10, 30)), rng)
    y = y * float(10 ** (rng.uniform(-12, 6) / 20))
    peak = np.abs(y).max()
    return y / peak * 0.99 if peak > 0.99 else y
