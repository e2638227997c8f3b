"""The one per-frame speech decision every path uses (live segmenter, ``classify`` trimming, training).

A frame is speech when webrtcvad says so *and* its level is above both an absolute floor (webrtcvad
alone fires on faint hum) and the tracked noise floor plus a margin (webrtcvad alone fires on
room noise at low SNR, so room tone would be pooled as if it were speech). The noise floor follows
the quietest recent level (power smoothed over ~100 ms, so the frame-to-frame flutter of noise
is not mistaken for speech): it drops at once to a quieter level and rises slowly, so speech
never becomes the floor but a room that gets louder is followed within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import webrtcvad

from emostream.streaming.audio import SAMPLE_RATE


@dataclass(frozen=True)
class VADConfig:
    frame_ms: int = 30
    aggressiveness: int = 2
    energy_floor_dbfs: float = -65.0
    noise_margin_db: float = 1.5  # speech frames are at least this far above the tracked noise floor
    noise_rise_db_per_s: float = 3.0  # how fast the floor may follow a room that gets louder
    smoothing_ms: float = 100.0  # time constant of the level the noise gate reads

    def __post_init__(self) -> None:
        if self.frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30 (webrtcvad), got {self.frame_ms}")
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"VAD aggressiveness must be 0-3, got {self.aggressiveness}")
        if self.noise_margin_db < 0 or self.noise_rise_db_per_s <= 0:
            raise ValueError("noise_margin_db must be >= 0 and noise_rise_db_per_s > 0")

    @property
    def frame_samples(self) -> int:
        return SAMPLE_RATE * self.frame_ms // 1000


def frame_level_db(frame: np.ndarray) -> float:
    return 10.0 * float(np.log10(np.mean(np.square(frame, dtype=np.float64)) + 1e-12))


class VoiceActivity:
    """Call with consecutive frames of ``config.frame_samples`` samples; one instance per stream."""

    def __init__(self, config: VADConfig | None = None) -> None:
        self.config = config or VADConfig()
        self._vad = webrtcvad.Vad(self.config.aggressiveness)
        self._rise = self.config.noise_rise_db_per_s * self.config.frame_ms / 1000.0
        self._alpha = 1.0 - float(np.exp(-self.config.frame_ms / self.config.smoothing_ms))
        self._power: float | None = None
        self.noise_floor_db: float | None = None

    def __call__(self, frame: np.ndarray) -> bool:
        power = float(np.mean(np.square(frame, dtype=np.float64)))
        self._power = power if self._power is None else self._power + self._alpha * (power - self._power)
        level = 10.0 * float(np.log10(self._power + 1e-12))
        floor = level if self.noise_floor_db is None else min(level, self.noise_floor_db + self._rise)
        self.noise_floor_db = floor
        if frame_level_db(frame) < self.config.energy_floor_dbfs or level < floor + self.config.noise_margin_db:
            return False
        pcm = (np.clip(frame, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        return self._vad.is_speech(pcm, SAMPLE_RATE)
