"""ZeroMQ PUB socket: multipart [topic, JSON]. Never blocks the pipeline.

PUB semantics: a subscriber that reads too slowly has messages dropped for it alone once its
queue reaches the high-water mark (libzmq does this per subscriber and does not report it);
subscribers see such gaps in ``seq`` (the Subscriber client counts them). A send the socket
refuses outright is counted in ``send_failures`` and reported in the status heartbeat.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import zmq

from emostream.curve import CurveOptions
from emostream.protocol import DEFAULT_ENDPOINT

log = logging.getLogger(__name__)


class PublisherError(RuntimeError):
    """The socket could not be bound; the message says why and what to try."""


class Publisher:
    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, high_water_mark: int = 1000, linger_ms: int = 1000,
                 curve: CurveOptions | None = None) -> None:
        """``curve``: encrypt and authenticate with CURVE (see ``emostream.curve``); a bad key file raises
        ValueError before anything is bound."""
        self.endpoint = endpoint
        self.sent = 0
        self.send_failures = 0
        self.curve = curve is not None and curve.enabled
        self._lock = threading.Lock()  # ZeroMQ sockets are not thread-safe; results and heartbeats share this one
        self._context = zmq.Context()  # our own, so close() can wait (up to linger) for queued messages
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, high_water_mark)
        self._socket.setsockopt(zmq.LINGER, linger_ms)
        self._authenticator = None
        try:
            if curve is not None:
                self._authenticator = curve.apply_server(self._context, self._socket)
            self._socket.bind(endpoint)
        except (zmq.ZMQError, ValueError) as exc:
            self._socket.close(0)
            if self._authenticator is not None:
                self._authenticator.stop()
            self._context.term()
            if isinstance(exc, ValueError):
                raise PublisherError(str(exc)) from exc
            hint = " (another emostream may be publishing there; pick another port with --publish)" \
                if exc.errno == zmq.EADDRINUSE else ""
            raise PublisherError(f"cannot publish on {endpoint}: {exc}{hint}") from exc
        if endpoint.endswith(":*"):  # the OS picked a free port: say which
            self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        if endpoint.startswith("tcp://") and not endpoint.startswith(("tcp://127.", "tcp://localhost", "tcp://[::1]")) \
                and not self.curve:
            log.warning("publishing on %s without CURVE: reachable and readable from other machines", endpoint)
        log.info("publishing on %s", endpoint)

    def emit(self, topic: str, message: dict[str, Any]) -> None:
        if message.get("type") == "gone":  # bus bookkeeping, not a result (see streaming.pipeline)
            return
        payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        with self._lock:
            if self._socket is None:
                return
            try:
                self._socket.send_multipart([topic.encode(), payload], flags=zmq.NOBLOCK)
                self.sent += 1
            except zmq.ZMQError as exc:
                self.send_failures += 1
                log.warning("could not publish %s message: %s", topic, exc)

    def stats(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "sent": self.sent, "send_failures": self.send_failures, "curve": self.curve}

    def close(self) -> None:
        """Close after letting queued messages go out (up to the linger time)."""
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
                if self._authenticator is not None:
                    self._authenticator.stop()
                self._context.term()  # returns once queued messages are out or the linger time is up
