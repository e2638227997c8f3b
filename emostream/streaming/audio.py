"""Turn whatever audio a user has into what the models take: float32 mono at 16 kHz.

Validation lives here so files, arrays and live utterances are all refused for the same
reasons with the same one-line messages.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_SECONDS = 30.0  # one utterance; longer recordings go through the live segmenter
MIN_SECONDS = 0.1
SILENCE_PEAK = 1e-3  # about -60 dBFS


class AudioError(ValueError):
    """Audio that cannot be classified; the message is one line meant for the user."""


def to_mono_16k(data: np.ndarray, sample_rate: int) -> np.ndarray:
    """(samples,) or (samples, channels) at any rate -> float32 mono 16 kHz (soxr resampling)."""
    if sample_rate <= 0:
        raise AudioError(f"invalid sample rate {sample_rate}")
    x = np.asarray(data, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise AudioError(f"expected (samples,) or (samples, channels) audio, got shape {x.shape}")
    if sample_rate != SAMPLE_RATE and x.size:
        x = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return x


def validate_waveform(x: np.ndarray, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Refuse empty, non-finite, silent or absurdly long 16 kHz mono audio; warn on clipping."""
    if x.size == 0:
        raise AudioError("empty audio (0 samples)")
    if not np.isfinite(x).all():
        raise AudioError("audio contains NaN or infinite samples")
    seconds = x.size / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise AudioError(f"audio is {seconds * 1000:.0f} ms long; need at least {MIN_SECONDS * 1000:.0f} ms")
    if seconds > max_seconds:
        raise AudioError(f"audio is {seconds:.1f} s long; one utterance may be at most {max_seconds:.0f} s "
                         "(use `emostream listen --input FILE` to segment long recordings)")
    peak = float(np.abs(x).max())
    if peak < SILENCE_PEAK:
        raise AudioError(f"audio is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS)")
    clipped = float(np.mean(np.abs(x) >= 0.999))
    if clipped > 0.001:
        log.warning("%.1f%% of samples are clipped; results may be less reliable", 100 * clipped)
    return x


def load_audio(path: str | Path, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Read any format soundfile knows, downmix, resample to 16 kHz and validate."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"no such file: {path}")
    try:
        info = sf.info(str(path))
        if info.frames / max(info.samplerate, 1) > max_seconds * 4:  # refuse before decoding hours of audio
            raise AudioError(f"audio is {info.frames / info.samplerate:.0f} s long; one utterance may be at "
                             f"most {max_seconds:.0f} s (use `emostream listen --input FILE` for long recordings)")
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"cannot read audio: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return validate_waveform(to_mono_16k(data, rate), max_seconds)
