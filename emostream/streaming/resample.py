"""Streaming conversion of device/pipe audio to 16 kHz mono float32 (soxr keeps filter state)."""

from __future__ import annotations

import numpy as np
import soxr

from emostream.streaming.audio import SAMPLE_RATE, AudioError


class StreamResampler:
    """Feed blocks at ``rate`` Hz with any channel count; get 16 kHz mono blocks back.

    One instance per stream: soxr's ResampleStream carries state across blocks, so block
    boundaries leave no clicks and the output length tracks the input exactly over time.
    """

    def __init__(self, rate: int) -> None:
        if not isinstance(rate, int) or rate < 1000 or rate > 384000:
            raise AudioError(f"unsupported sample rate {rate!r} Hz (expected 1000-384000, e.g. 16000 or 48000)")
        self.rate = rate
        self._stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32",
                                                                             quality="HQ")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1, dtype=np.float32)
        if self._stream is None:
            return np.ascontiguousarray(x)
        return self._stream.resample_chunk(np.ascontiguousarray(x), last=last)
