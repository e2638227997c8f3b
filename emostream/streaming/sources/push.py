"""Audio pushed in by another thread: a network client's frames (the gateway), already decoded."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np

from emostream.streaming.audio import SAMPLE_RATE
from emostream.streaming.sources.base import AudioSource


class PushSource(AudioSource):
    """``push`` 16 kHz mono float32 blocks; ``end`` when the sender is done.

    The buffer between the pusher and the segmenter is bounded in seconds of audio: a ``push`` that
    does not fit returns False and keeps nothing; the pusher slows its client down (or gives up).
    """

    kind = "network"

    def __init__(self, stream_id: str, description: str, max_buffered_s: float = 5.0) -> None:
        super().__init__(stream_id, description)
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue()
        self._buffered = 0
        self._limit = int(max_buffered_s * SAMPLE_RATE)
        self._lock = threading.Lock()
        self._ended = False

    def push(self, block: np.ndarray) -> bool:
        """False (nothing kept) when the buffer has no room: the pusher waits and tries again, or
        gives up (the gateway closes 1013 after a while)."""
        with self._lock:
            if self._ended:
                return True
            if self._buffered + block.size > self._limit:
                return False
            self._buffered += block.size
        self._queue.put(block)
        return True

    def end(self) -> None:
        with self._lock:
            if not self._ended:
                self._ended = True
                self._queue.put(None)

    def _blocks(self, stop: threading.Event) -> Iterator[np.ndarray]:
        while True:
            try:
                block = self._queue.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if block is None:
                return
            with self._lock:
                self._buffered -= block.size
            yield block
