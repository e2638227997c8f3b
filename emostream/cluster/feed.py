"""Results from the bus, de-duplicated and in seq order per stream: the loop the bridge and the
edge relay share. A subclass names its subjects, may filter or divert messages, and delivers."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from emostream.cluster.link import NatsLink
from emostream.cluster.ordering import ResultOrder

log = logging.getLogger(__name__)

TICK_S = 0.2  # how often held finals are checked for expiry (ResultOrder's hold_s is the wait)


class OrderedFeed:
    def __init__(self, link: NatsLink, hold_s: float = 2.0) -> None:
        self.link = link
        self.order = ResultOrder(hold_s)
        self.counters = {"received": 0, "invalid": 0}
        self._subs: list[Any] = []
        self._ticker: asyncio.Task | None = None

    def subjects(self) -> list[str]:
        raise NotImplementedError

    def accept(self, subject: str, message: dict[str, Any]) -> bool:
        """False: the message is not a result to order (ignored, or handled here)."""
        return True

    def deliver(self, messages: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        for subject in self.subjects():
            self._subs.append(await self.link.nc.subscribe(subject, cb=self._on_message))
        self._ticker = asyncio.create_task(self._tick())

    async def _on_message(self, msg) -> None:
        self.counters["received"] += 1
        try:
            message = json.loads(msg.data)
            if not isinstance(message, dict):
                raise TypeError(f"a JSON {type(message).__name__}, not an object")
            if not self.accept(msg.subject, message):
                return
            ready = self.order.add(message)
        except (ValueError, KeyError, TypeError) as exc:
            self.counters["invalid"] += 1
            log.warning("ignored a message on %s: %s", msg.subject, exc)
            return
        self.deliver(ready)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.deliver(self.order.expire())
            except Exception:  # a failing sink must not stop expiry for every later result
                log.exception("delivering held results failed")

    async def stop(self) -> None:
        """Stop listening and deliver whatever is still held."""
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may already be gone; nothing more can arrive then
                pass
        self._subs.clear()
        if self._ticker is not None:
            self._ticker.cancel()
        self.deliver(self.order.expire(now=float("inf")))
