"""One NATS connection on its own asyncio loop thread, callable from the pipeline's plain threads.

The pipeline's stages are threads; nats-py is asyncio. A ``NatsLink`` is a ``LoopThread`` that
connects once (reconnecting forever afterwards, as a server restart must not end a worker)
and runs coroutines for the threads with ``call``. Connection events are logged and counted so the
status heartbeat can say when the bus was away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from emostream.streaming.loop import LoopThread

log = logging.getLogger(__name__)


class _SslEofNoise(logging.Filter):
    """nats-py's protocol returns True from eof_received, which asyncio's TLS transport warns about
    each time a tls:// server closes a connection; the close itself is reported by us."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_SslEofNoise())

DEFAULT_URL = "nats://127.0.0.1:4222"


class BusError(RuntimeError):
    """The NATS server cannot be reached or refused us; the message is one line for the user."""


@dataclass(frozen=True)
class NatsOptions:
    """How to reach the bus. Credentials are passed through to nats-py unchanged."""

    url: str = DEFAULT_URL
    name: str = "emostream"
    token: str | None = None  # --nats-token / EMOSTREAM_NATS_TOKEN
    user: str | None = None
    password: str | None = None
    creds: str | None = None  # a .creds file (JWT + nkey; needs nats-py[nkeys])
    tls_ca: str | None = None  # CA bundle for tls:// servers with a private CA
    connect_timeout_s: float = 5.0

    def connect_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"servers": [u.strip() for u in self.url.split(",") if u.strip()], "name": self.name,
                              "connect_timeout": min(2.0, self.connect_timeout_s), "max_reconnect_attempts": -1,
                              "reconnect_time_wait": 0.5, "allow_reconnect": True,
                              "pending_size": 16 * 1024 * 1024}
        token = self.token or os.environ.get("EMOSTREAM_NATS_TOKEN")
        if token:
            kw["token"] = token
        if self.user:
            kw["user"], kw["password"] = self.user, self.password or ""
        if self.creds:
            kw["user_credentials"] = self.creds
        if self.tls_ca:
            kw["tls"] = ssl.create_default_context(cafile=self.tls_ca)
        return kw


class NatsLink(LoopThread):
    """A connected NATS client and the loop it lives on. ``call`` runs a coroutine there and waits."""

    def __init__(self, options: NatsOptions) -> None:
        super().__init__("nats")
        self.options = options
        self.nc: Any = None
        self.js: Any = None
        self.counters = {"disconnects": 0, "reconnects": 0, "errors": 0}
        self.connected = threading.Event()
        self.last_error: str | None = None  # what the client last complained about (auth, TLS, refused)
        self._closing = False
        try:
            self.call(self._connect(), timeout=options.connect_timeout_s + 1)
        except BaseException:
            self.stop()
            raise

    async def _connect(self) -> None:
        import nats
        import nats.errors

        async def on_error(exc: Exception) -> None:
            self.counters["errors"] += 1
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            # a server that refuses us (authorization) closes the socket, so a broken pipe or reset
            # often comes last: keep the refusal, which is what the user can act on
            if not isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                                    nats.errors.UnexpectedEOF)) or self.last_error is None:
                self.last_error = text
            log.debug("nats: %s", exc)

        async def on_disconnected() -> None:
            self.connected.clear()
            if self._closing:
                return
            self.counters["disconnects"] += 1
            log.warning("lost the NATS server %s; reconnecting", self.options.url)

        async def on_reconnected() -> None:
            self.connected.set()
            self.counters["reconnects"] += 1
            log.warning("reconnected to NATS at %s", self.nc.connected_url.netloc if self.nc.connected_url else "?")

        kw = self.options.connect_kwargs()
        try:  # reconnects forever once up, so the first connect needs its own deadline
            self.nc = await asyncio.wait_for(
                nats.connect(**kw, error_cb=on_error, disconnected_cb=on_disconnected,
                             reconnected_cb=on_reconnected), self.options.connect_timeout_s)
        except asyncio.TimeoutError:
            why = f"last error: {self.last_error}" if self.last_error else "is nats-server running with -js?"
            raise BusError(f"cannot reach the NATS server at {self.options.url} within "
                           f"{self.options.connect_timeout_s:g} s ({why}; see README, Cluster)") from None
        except Exception as exc:  # authorization violation, bad TLS, bad URL
            raise BusError(f"cannot connect to NATS at {self.options.url}: {exc or type(exc).__name__}") from exc
        self.js = self.nc.jetstream(timeout=5.0)
        self.connected.set()

    def close(self) -> None:
        """Flush what was published and disconnect; safe to call twice."""
        self._closing = True
        if self.nc is not None and not self.nc.is_closed:
            try:
                self.call(asyncio.wait_for(self.nc.drain(), 5), timeout=6)
            except Exception as exc:
                log.debug("nats drain: %s", exc)
            if not self.nc.is_closed:
                try:
                    self.call(self.nc.close(), timeout=5)
                except Exception:
                    pass
        self.stop()
