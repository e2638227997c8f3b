"""``emostream bridge``: the bus's results on today's ZeroMQ PUB socket, same topics and schemas.

Existing subscribers (``emostream subscribe``, the Python ``Subscriber``, anything reading topic
``emotion.<stream_id>``) keep working against a cluster. Results are de-duplicated and put in seq
order per stream (``feed.OrderedFeed``); every process's status heartbeat is passed through on
topic ``status`` (its ``role`` and ``worker`` say whose it is).
"""

from __future__ import annotations

from typing import Any

from emostream.protocol import STATUS_TOPIC, emotion_topic, partial_topic
from emostream.cluster import wire
from emostream.cluster.feed import OrderedFeed
from emostream.cluster.link import NatsLink


class Bridge(OrderedFeed):
    def __init__(self, link: NatsLink, publisher, hold_s: float = 2.0) -> None:
        super().__init__(link, hold_s)
        self.publisher = publisher

    def subjects(self) -> list[str]:
        return [wire.bus_subject(f"{topic}.>") for topic in ("emotion", "partial", "gone", "status")]

    def accept(self, subject: str, message: dict[str, Any]) -> bool:
        if subject.startswith(wire.bus_subject("status.")):
            self.publisher.emit(STATUS_TOPIC, message)
            return False
        return True

    def deliver(self, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            topic = partial_topic(m["stream_id"]) if m.get("type") == "partial" else emotion_topic(m["stream_id"])
            self.publisher.emit(topic, m)
