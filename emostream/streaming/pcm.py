"""Raw PCM bytes to and from float samples: pipes, network frames and the bus use these, nothing else."""

from __future__ import annotations

import numpy as np

from emostream.streaming.audio import AudioError
from emostream.streaming.resample import StreamResampler

FORMATS = {"s16le": 2, "f32le": 4, "mulaw": 1}  # bytes per sample


def to_s16le(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def from_s16le(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def _mulaw_table() -> np.ndarray:
    """G.711 u-law byte -> linear float in [-1, 1]."""
    u = ~np.arange(256, dtype=np.uint8)
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    linear = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return (linear / 32768.0).astype(np.float32)


_MULAW = _mulaw_table()


class PcmDecoder:
    """Byte chunks of one stream (any split) -> 16 kHz mono float32; a sample or frame cut across
    chunks waits for the rest (``pending_bytes``)."""

    def __init__(self, rate: int, fmt: str = "s16le", channels: int = 1) -> None:
        if fmt not in FORMATS:
            raise AudioError(f"unknown PCM format {fmt!r}; use {', '.join(FORMATS)}")
        self.format, self.channels = fmt, channels
        self._frame = FORMATS[fmt] * channels
        self._rest = b""
        self._resample = StreamResampler(rate)

    @property
    def pending_bytes(self) -> int:
        return len(self._rest)

    def __call__(self, data: bytes, last: bool = False) -> np.ndarray:
        data = self._rest + data
        usable = len(data) - len(data) % self._frame
        self._rest, data = data[usable:], data[:usable]
        if self.format == "s16le":
            x = from_s16le(data)
        elif self.format == "f32le":
            x = np.frombuffer(data, dtype="<f4").astype(np.float32)
            if not np.all(np.isfinite(x)):
                raise AudioError("f32le audio contains NaN or infinity")
        else:
            x = _MULAW[np.frombuffer(data, dtype=np.uint8)]
        return self._resample(x.reshape(-1, self.channels), last=last)
