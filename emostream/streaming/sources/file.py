"""An audio file as a live stream, paced in real time (like a microphone) or as fast as possible."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from emostream.streaming.audio import AudioError
from emostream.streaming.resample import StreamResampler
from emostream.streaming.sources.base import AudioSource, SourceError


class FileSource(AudioSource):
    kind = "file"

    def __init__(self, path: str | Path, stream_id: str, realtime: bool = True, block_ms: int = 20) -> None:
        path = Path(path)
        super().__init__(stream_id, str(path))
        self.realtime = realtime
        self.live = realtime  # read as fast as possible: the pipeline waits for room instead of dropping
        if not path.is_file():
            raise SourceError(f"no such file: {path}")
        try:
            self._file = sf.SoundFile(str(path))
        except Exception as exc:  # LibsndfileError, RuntimeError, TypeError
            raise SourceError(f"cannot read audio file {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
        try:
            self._resample = StreamResampler(int(self._file.samplerate))
        except AudioError as exc:
            self._file.close()
            raise SourceError(f"{path}: {exc}") from exc
        self._block = max(1, int(self._file.samplerate * block_ms / 1000))

    def _blocks(self, stop: threading.Event) -> Iterator[np.ndarray]:
        rate = self._file.samplerate
        t0 = time.monotonic()
        frames_read = 0
        try:
            while not stop.is_set():
                try:
                    block = self._file.read(self._block, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise SourceError(f"{self.description}: audio data is corrupt after {frames_read / rate:.1f} s "
                                      f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
                if len(block) == 0:
                    break
                frames_read += len(block)
                if not np.isfinite(block).all():
                    self.count("nonfinite_blocks")
                    block = np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0)
                yield self._resample(block)
                if self.realtime:
                    ahead = t0 + frames_read / rate - time.monotonic()
                    if ahead > 0:
                        stop.wait(ahead)
            yield self._resample(np.zeros((0, 1), np.float32), last=True)
        finally:
            self.close()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
