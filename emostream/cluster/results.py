"""The WebSocket server's result feed in cluster mode: a stream's results from the bus."""

from __future__ import annotations

import json
import logging

from emostream.cluster import wire
from emostream.cluster.link import NatsLink
from emostream.web.feed import Deliver, Unsubscribe

log = logging.getLogger(__name__)


class NatsResultFeed:
    def __init__(self, link: NatsLink) -> None:
        self.link = link

    async def subscribe(self, stream_id: str, deliver: Deliver) -> Unsubscribe:
        async def on_result(msg) -> None:
            try:
                deliver(json.loads(msg.data))
            except (ValueError, KeyError, TypeError) as exc:
                log.debug("ignored a result on %s: %s", msg.subject, exc)

        subs = [await self.link.nc.subscribe(wire.bus_subject(f"{topic}.{stream_id}"), cb=on_result)
                for topic in ("emotion", "partial", "gone")]

        async def unsubscribe() -> None:
            for sub in subs:
                try:
                    await sub.unsubscribe()
                except Exception:  # the connection is already closing
                    pass

        return unsubscribe
