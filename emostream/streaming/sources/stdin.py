"""Raw signed 16-bit little-endian PCM from a pipe (``emostream listen --input - --rate 48000``)."""

from __future__ import annotations

import logging
import os
import select
import stat
import sys
import threading
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from emostream.streaming.audio import AudioError
from emostream.streaming.pcm import PcmDecoder
from emostream.streaming.sources.base import AudioSource, SourceError

log = logging.getLogger(__name__)


class StdinSource(AudioSource):
    kind = "stdin"

    def __init__(self, stream_id: str, rate: int, channels: int = 1, stream: BinaryIO | None = None,
                 block_ms: int = 20) -> None:
        super().__init__(stream_id, f"stdin (s16le, {rate} Hz, {channels} ch)")
        if channels < 1 or channels > 32:
            raise SourceError(f"unsupported channel count {channels} for stdin PCM (1-32)")
        try:
            self._decode = PcmDecoder(rate, "s16le", channels)
        except AudioError as exc:
            raise SourceError(f"stdin: {exc}; pass the pipe's rate with --rate") from exc
        self.channels = channels
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._frame_bytes = 2 * channels
        self._block_bytes = max(1, int(rate * block_ms / 1000)) * self._frame_bytes
        try:
            self._fd: int | None = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None
        # `< recording.raw` is a file read at disk speed; a pipe (arecord, ffmpeg -re) is treated as live
        self.live = not (self._fd is not None and stat.S_ISREG(os.fstat(self._fd).st_mode))

    def _read(self, stop: threading.Event) -> bytes | None:
        """Up to one block of bytes; b'' at end of input; None if stopped while waiting."""
        if self._fd is None:
            return self._stream.read(self._block_bytes)
        while not stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if ready:
                return os.read(self._fd, self._block_bytes)
        return None

    def _blocks(self, stop: threading.Event) -> Iterator[np.ndarray]:
        while True:
            data = self._read(stop)
            if data is None:
                break
            if not data:
                if self._decode.pending_bytes:
                    self.count("partial_frame_bytes", self._decode.pending_bytes)
                    log.warning("stdin ended mid-frame: dropped %d trailing byte(s)", self._decode.pending_bytes)
                break
            block = self._decode(data)
            if block.size:
                yield block
        yield self._decode(b"", last=True)
