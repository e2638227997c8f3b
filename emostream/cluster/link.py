"""One NATS connection on its own asyncio loop thread, callable from the pipeline's plain threads.

The pipeline's stages are threads; nats-py is asyncio. A ``NatsLink`` owns a loop in a daemon
thread, connects once (reconnecting forever afterwards, as a server restart must not end a worker)
and runs coroutines for the threads with ``call``. Connection events are logged and counted so the
status heartbeat can say when the bus was away.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)


class _SslEofNoise(logging.Filter):
    """nats-py's protocol returns True from eof_received, which asyncio's TLS transport warns about
    each time a tls:// server closes a connection; the close itself is reported by us."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_SslEofNoise())
T = TypeVar("T")

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


class NatsLink:
    """A connected NATS client and the loop it lives on. ``call`` runs a coroutine there and waits."""

    def __init__(self, options: NatsOptions) -> None:
        self.options = options
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="nats", daemon=True)
        self._thread.start()
        self.nc: Any = None
        self.js: Any = None
        self.counters = {"disconnects": 0, "reconnects": 0, "errors": 0}
        self.connected = threading.Event()
        self.last_error: str | None = None  # what the client last complained about (auth, TLS, refused)
        self._closing = False
        try:
            self.call(self._connect(), timeout=options.connect_timeout_s + 1)
        except BaseException:
            self._stop_loop()
            raise

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

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

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on the link's loop from another thread and return its result; on timeout the
        coroutine is cancelled (it must not finish later, unseen: it may have taken a message)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("NatsLink.call from the loop thread would wait on itself; use spawn")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def on_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Start ``coro`` on the loop without waiting (a concurrent.futures.Future)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

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
        self._stop_loop()

    def _stop_loop(self) -> None:
        """Cancel what still runs on the loop (send loops, tickers), then stop it."""
        if not self.loop.is_running():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.call(cancel_all(), timeout=5)
        except Exception as exc:
            log.debug("cancelling tasks: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
