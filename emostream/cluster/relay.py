"""Results for this process's own streams, back from the bus (``listen --nats``, edge mode).

The edge machine segments and enqueues; workers elsewhere recognize. This relay subscribes to the
results of the edge's streams and session, de-duplicates and orders them, and hands them to the
edge pipeline's sinks (live view, lines, JSONL, its ZeroMQ socket), so ``listen --nats`` looks like
``listen``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from emostream.clients.schema import emotion_topic, partial_topic
from emostream.cluster import wire
from emostream.cluster.link import NatsLink
from emostream.cluster.ordering import ResultOrder

log = logging.getLogger(__name__)


class ResultRelay:
    def __init__(self, link: NatsLink, session: str, stream_ids: Iterable[str],
                 emit: Callable[[str, dict[str, Any]], None], hold_s: float = 2.0) -> None:
        self.link, self.session, self.emit = link, session, emit
        self.stream_ids = list(stream_ids)
        self.order = ResultOrder(hold_s)
        self.finals = 0
        self._subs: list[Any] = []
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        for sid in self.stream_ids:
            for topic in ("emotion", "partial", "gone"):
                self._subs.append(await self.link.nc.subscribe(wire.bus_subject(f"{topic}.{sid}"), cb=self._on))
        self._ticker = asyncio.create_task(self._tick())

    async def _on(self, msg) -> None:
        try:
            message = json.loads(msg.data)
            if message.get("session") == self.session:
                self._out(self.order.add(message))
        except (ValueError, KeyError, TypeError) as exc:
            log.debug("ignored a result on %s: %s", msg.subject, exc)

    def _out(self, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            if m.get("type") == "partial":
                self.emit(partial_topic(m["stream_id"]), m)
            else:
                self.finals += 1
                self.emit(emotion_topic(m["stream_id"]), m)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self._out(self.order.expire())

    def wait(self, expected: Callable[[], int], timeout_s: float) -> bool:
        """Block until ``expected()`` finals came back (or ``timeout_s``); then stop listening."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and (self.finals + self._gone() < expected() or self.order.waiting()):
            time.sleep(0.05)
        done = self.finals + self._gone() >= expected()
        self.link.call(self._stop(), timeout=5)
        return done

    def _gone(self) -> int:
        """Utterances a worker dropped or gave up on (announced once each, duplicates ignored)."""
        return sum(len(self.order.account(self.session, sid)[1]) for sid in self.stream_ids)

    async def _stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        if self._ticker is not None:
            self._ticker.cancel()
        self._out(self.order.expire(now=float("inf")))
