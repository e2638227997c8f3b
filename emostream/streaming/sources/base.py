"""What every source shares: a stream id, the stream clock, counters, and one error type."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import numpy as np

from emostream.streaming.frames import AudioChunk

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source that cannot start or has stopped for good; the message is one line for the user."""


class SourceInterrupted(SourceError):
    """The device went away, and the source may get it back: the pipeline calls ``reopen``."""


class AudioSource(ABC):
    """Subclasses produce 16 kHz mono float32 blocks; this class numbers them on the stream clock.

    ``chunks(stop)`` ends when the audio ends (file, closed pipe) or soon after ``stop`` is set,
    and raises SourceError when the audio goes away unexpectedly (a vanished microphone).
    """

    kind = "source"
    live = True  # audio arrives at its own pace (a microphone); False: we read it as fast as we like

    def __init__(self, stream_id: str, description: str) -> None:
        self.stream_id = stream_id
        self.description = description
        self.samples_read = 0
        self.counters: dict[str, int] = {}

    @abstractmethod
    def _blocks(self, stop: threading.Event) -> Iterator[np.ndarray]: ...

    def chunks(self, stop: threading.Event) -> Iterator[AudioChunk]:
        for block in self._blocks(stop):
            if block.size == 0:
                continue
            chunk = AudioChunk(np.ascontiguousarray(block, dtype=np.float32), self.samples_read)
            self.samples_read += block.size
            yield chunk

    def chunks_across_losses(self, stop: threading.Event, lost: Callable[[SourceInterrupted], None],
                             back: Callable[[], None]) -> Iterator[AudioChunk]:
        """``chunks``, carried across a vanished device: ``lost`` hears of the loss (the caller
        publishes what was said up to it), the source is reopened (waiting until the device is
        back or ``stop``), ``back`` hears of its return and reading goes on."""
        while True:
            try:
                yield from self.chunks(stop)
                return
            except SourceInterrupted as exc:
                lost(exc)
                self.count("interruptions")
                log.warning("%s; retrying until it is back (--exit-on-device-loss to stop instead)", exc)
                if not self.reopen(stop):
                    return
                back()
                log.warning("%s is back", self.description)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def reopen(self, stop: threading.Event) -> bool:
        """After SourceInterrupted: try to get the device back until ``stop``; True when it is back."""
        return False

    def close(self) -> None:
        """Release the device or file; safe to call twice."""
