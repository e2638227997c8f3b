"""Results on the bus: the pipeline's topics as NATS subjects (core NATS, like a PUB socket)."""

from __future__ import annotations

import json
import logging
from typing import Any

from emostream.protocol import STATUS_TOPIC
from emostream.cluster import wire
from emostream.cluster.link import NatsLink

log = logging.getLogger(__name__)


class NatsSink:
    """``emotion.<sid>`` -> ``emostream.emotion.<sid>``; ``status`` -> ``emostream.status.<name>``.

    Publishing never blocks the pipeline: while the server is away nats-py buffers (16 MiB) and
    sends on reconnect; a message it cannot buffer is counted in ``send_failures``.
    """

    def __init__(self, link: NatsLink, name: str) -> None:
        self.link = link
        self.name = name
        self.sent = 0
        self.send_failures = 0

    def emit(self, topic: str, message: dict[str, Any]) -> None:
        """Hand the message to the client without waiting (from any thread, the loop's own too).
        Messages keep their order, and a worker's ack, queued after its result, goes out after it."""
        subject = wire.bus_subject(f"status.{self.name}" if topic == STATUS_TOPIC else topic)
        payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()

        def done(future) -> None:
            exc = future.exception() if not future.cancelled() else None
            if exc is None and not future.cancelled():
                self.sent += 1
            else:
                self.send_failures += 1
                log.warning("could not publish %s on NATS: %s", subject, exc or "cancelled")

        if self.link.on_loop():
            self.link.loop.create_task(self.link.nc.publish(subject, payload)).add_done_callback(done)
        else:
            self.link.spawn(self.link.nc.publish(subject, payload)).add_done_callback(done)

    def stats(self) -> dict[str, Any]:
        return {"endpoint": self.link.options.url, "sent": self.sent, "send_failures": self.send_failures}

    def close(self) -> None:
        try:
            self.link.call(self.link.nc.flush(timeout=5), timeout=6)
        except Exception as exc:
            log.debug("flush: %s", exc)
