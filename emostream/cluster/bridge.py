"""``emostream bridge``: the bus's results on today's ZeroMQ PUB socket, same topics and schemas.

Existing subscribers (``emostream subscribe``, the Python ``Subscriber``, anything reading topic
``emotion.<stream_id>``) keep working against a cluster. Results are de-duplicated and put in seq
order per stream (``ordering.ResultOrder``); every process's status heartbeat is passed through on
topic ``status`` (its ``role`` and ``worker`` say whose it is).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from emostream.clients.schema import STATUS_TOPIC, emotion_topic, partial_topic
from emostream.cluster import wire
from emostream.cluster.link import NatsLink
from emostream.cluster.ordering import ResultOrder

log = logging.getLogger(__name__)


class Bridge:
    def __init__(self, link: NatsLink, publisher, hold_s: float = 2.0) -> None:
        self.link, self.publisher = link, publisher
        self.order = ResultOrder(hold_s)
        self.counters = {"received": 0, "invalid": 0}
        self._subs: list[Any] = []
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        nc = self.link.nc
        for topic in ("emotion", "partial", "gone", "status"):
            self._subs.append(await nc.subscribe(wire.bus_subject(f"{topic}.>"), cb=self._on_message))
        self._ticker = asyncio.create_task(self._tick())

    async def _on_message(self, msg) -> None:
        self.counters["received"] += 1
        try:
            message = json.loads(msg.data)
            if msg.subject.startswith(wire.bus_subject("status.")):
                self.publisher.emit(STATUS_TOPIC, message)
                return
            self._emit(self.order.add(message))
        except (ValueError, KeyError, TypeError) as exc:
            self.counters["invalid"] += 1
            log.warning("ignored a message on %s: %s", msg.subject, exc)

    def _emit(self, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            topic = partial_topic(m["stream_id"]) if m.get("type") == "partial" else emotion_topic(m["stream_id"])
            self.publisher.emit(topic, m)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self._emit(self.order.expire())

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        if self._ticker is not None:
            self._ticker.cancel()
        self._emit(self.order.expire(now=float("inf")))
