"""A stream's finals leave in the order they were said, however many workers recognize them.

With one worker the queue's order is the publishing order. With several, a stream's next utterance
can finish before the one said before it (a longer one, a bigger batch); a dialogue system reading
``seq`` would see a gap and then the past. So each final is registered when it closes, and its
publication waits while an earlier final of its stream is still open (queued or being recognized).
The lowest open final of a stream never waits, so the wait ends; ``max_wait_s`` bounds it anyway
(logged), because a missed bookkeeping step must cost order, never a result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from emostream.streaming.frames import Utterance

log = logging.getLogger(__name__)


class FinalOrder:
    def __init__(self, enabled: bool, max_wait_s: float = 30.0) -> None:
        self.enabled = enabled
        self.max_wait_s = max_wait_s
        self.waited = 0  # publications that waited for an earlier final (for tests and logs)
        self._open: dict[tuple[str | None, str], set[int]] = {}
        self._cond = threading.Condition()

    @staticmethod
    def _key(utterance: Utterance) -> tuple[str | None, str]:
        return utterance.session, utterance.stream_id

    def opened(self, utterance: Utterance) -> None:
        """The VAD closed it: from now on later finals of its stream wait for it."""
        if self.enabled:
            with self._cond:
                self._open.setdefault(self._key(utterance), set()).add(utterance.seq)

    def closed(self, utterance: Utterance) -> None:
        """Published, dropped or failed: later finals of its stream no longer wait for it."""
        if not self.enabled:
            return
        with self._cond:
            seqs = self._open.get(self._key(utterance))
            if seqs is not None:
                seqs.discard(utterance.seq)
                if not seqs:
                    del self._open[self._key(utterance)]
            self._cond.notify_all()

    @contextmanager
    def turn(self, utterance: Utterance) -> Iterator[None]:
        """Wait until no earlier final of the stream is open, run the body (publish), then close."""
        if not self.enabled:
            yield
            return
        key, end = self._key(utterance), time.monotonic() + self.max_wait_s
        with self._cond:
            def earlier() -> bool:
                return any(s < utterance.seq for s in self._open.get(key, ()))

            if earlier():
                self.waited += 1
                if not self._cond.wait_for(lambda: not earlier(), timeout=max(0.0, end - time.monotonic())):
                    log.warning("%s#%d published before an earlier final of its stream (waited %.0f s)",
                                utterance.stream_id, utterance.seq, self.max_wait_s)
        try:
            yield
        finally:
            self.closed(utterance)
