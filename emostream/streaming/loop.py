"""An asyncio loop in a daemon thread, callable from the pipeline's plain threads.

The pipeline's stages are threads; network servers and clients (websockets, nats-py) are asyncio.
A ``LoopThread`` owns one loop and runs coroutines on it for the other threads (``call`` waits,
``spawn`` does not); ``stop`` cancels what still runs there and ends the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name=name, daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on the loop from another thread and return its result; on timeout the
        coroutine is cancelled (it must not finish later, unseen: it may have taken a message)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(f"{type(self).__name__}.call from the loop thread would wait on itself; use spawn")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def on_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        """Start ``coro`` on the loop without waiting."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Cancel what still runs on the loop (send loops, tickers), then stop it; safe to call twice."""
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
