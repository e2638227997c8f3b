"""Where the WebSocket server gets each stream's results.

``emostream gateway`` reads them from the bus (``cluster.results.NatsResultFeed``); ``emostream
serve`` from the pipeline in its own process (``LocalResultFeed``, which is that pipeline's sink).
The server sees one interface either way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from emostream.protocol import STATUS_TOPIC

Deliver = Callable[[dict[str, Any]], None]
Unsubscribe = Callable[[], Awaitable[None]]


class ResultFeed(Protocol):
    async def subscribe(self, stream_id: str, deliver: Deliver) -> Unsubscribe:
        """From now on call ``deliver`` on the server's loop with every emotion, partial and gone
        message of ``stream_id``, until the returned coroutine function is awaited."""
        ...


class LocalResultFeed:
    """The in-process pipeline's sink and the server's feed: each message reaches the subscribers of
    its stream on the server's loop, in the order the pipeline emitted it (a copy each: a subscriber
    may annotate it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._subscribers: dict[str, list[Deliver]] = {}
        self._lock = threading.Lock()

    def emit(self, topic: str, message: dict[str, Any]) -> None:
        stream_id = message.get("stream_id")
        if topic == STATUS_TOPIC or not isinstance(stream_id, str):
            return
        with self._lock:
            targets = list(self._subscribers.get(stream_id, ()))
        for deliver in targets:
            self.loop.call_soon_threadsafe(deliver, dict(message))

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()

    async def subscribe(self, stream_id: str, deliver: Deliver) -> Unsubscribe:
        with self._lock:
            self._subscribers.setdefault(stream_id, []).append(deliver)

        async def unsubscribe() -> None:
            with self._lock:
                subscribers = self._subscribers.get(stream_id, [])
                if deliver in subscribers:
                    subscribers.remove(deliver)
                if not subscribers:
                    self._subscribers.pop(stream_id, None)

        return unsubscribe
