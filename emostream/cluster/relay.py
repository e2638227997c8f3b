"""Results for this process's own streams, back from the bus (``listen --nats``, edge mode).

The edge machine segments and enqueues; workers elsewhere recognize. This relay subscribes to the
results of the edge's streams and session, de-duplicates and orders them, and hands them to the
edge pipeline's sinks (live view, lines, JSONL, its ZeroMQ socket), so ``listen --nats`` looks like
``listen``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from emostream.protocol import emotion_topic, partial_topic
from emostream.cluster import wire
from emostream.cluster.feed import OrderedFeed
from emostream.cluster.link import NatsLink


class ResultRelay(OrderedFeed):
    def __init__(self, link: NatsLink, session: str, stream_ids: Iterable[str],
                 emit: Callable[[str, dict[str, Any]], None], hold_s: float = 2.0) -> None:
        super().__init__(link, hold_s)
        self.session, self.emit = session, emit
        self.stream_ids = list(stream_ids)
        self.finals = 0

    def subjects(self) -> list[str]:
        return [wire.bus_subject(f"{topic}.{sid}") for sid in self.stream_ids for topic in ("emotion", "partial", "gone")]

    def accept(self, subject: str, message: dict[str, Any]) -> bool:
        return message.get("session") == self.session  # the same stream id from another edge is not ours

    def deliver(self, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            if m.get("type") == "partial":
                self.emit(partial_topic(m["stream_id"]), m)
            else:
                self.finals += 1
                self.emit(emotion_topic(m["stream_id"]), m)

    def wait(self, expected: Callable[[], int], timeout_s: float) -> bool:
        """Block until ``expected()`` finals came back (or ``timeout_s``); then stop listening."""
        end = time.monotonic() + timeout_s
        while True:
            answered, holding = self.link.call(self._progress(), timeout=5)
            done = answered >= expected()
            if (done and not holding) or time.monotonic() >= end:
                break
            time.sleep(0.05)
        self.link.call(self.stop(), timeout=5)
        return done

    async def _progress(self) -> tuple[int, int]:
        """(finals + utterances a worker dropped or gave up on, results held back for order), read
        on the loop that changes them."""
        gone = sum(len(self.order.account(self.session, sid)[1]) for sid in self.stream_ids)
        return self.finals + gone, self.order.waiting()
