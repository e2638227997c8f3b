"""The queue between segmenters and workers: the ``WorkQueue`` seam and its in-process kind, a
bounded queue whose policy when full is explicit: drop the oldest item and say so.

Beside it, best-effort work (partial results, speculative finals) waits in one slot per key
(stream): a newer offer replaces an older one, and ``get`` hands it out only when no queued
item waits: a final waits at most for the one best-effort item a worker already took."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from emostream.streaming.frames import Utterance

T = TypeVar("T")


class WorkQueue(Protocol):
    """Between segmenters and workers: ``DropOldestQueue`` in process, ``NatsWorkQueue`` on a bus."""

    capacity: int
    dropped: int
    high_water: int
    supports_speculation: bool  # the close and the models are in one process
    on_drop: Callable[[Utterance, str], None] | None  # a drop that happens later, away from put (a bus)
    on_failed: Callable[[Utterance, str], None] | None  # a bus gave up on an utterance its workers died holding

    def put(self, item: Utterance) -> Utterance | None: ...  # returns the item it dropped, if any

    def put_wait(self, item: Utterance) -> None: ...

    def offer(self, key: Any, item: Any) -> Any | None: ...

    def withdraw(self, key: Any, item: Any) -> bool: ...

    def get(self, timeout: float | None = None) -> Any: ...

    def get_batch(self, limit: int, timeout: float | None = None) -> list[Any]: ...  # [] if nothing came

    def backlog(self) -> int: ...  # work waiting here: finals and early offers (partials stretch with it)

    def task_done(self, item: Utterance, outcome: str) -> None: ...  # published | unusable | failed

    def is_last_try(self, item: Utterance) -> bool: ...  # False: another worker will try it after a failure

    def flush(self) -> None: ...  # what the sources queued has left this process

    def stats(self) -> dict[str, Any]: ...

    def __len__(self) -> int: ...


class DropOldestQueue(Generic[T]):
    """Thread-safe FIFO of at most ``capacity`` items. ``put`` never blocks: when full it evicts
    the oldest item and returns it so the caller can count and report the drop. Keeping the newest
    utterance bounds latency: a dialogue system wants what was said now, not a backlog."""

    supports_speculation = True  # the close and the models are in this process
    on_drop = on_failed = None  # in process every drop happens in put, which returns it

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._slots: dict[Any, Any] = {}  # key -> best-effort item, oldest offer first
        self._cond = threading.Condition()
        self.dropped = 0
        self.high_water = 0

    def put(self, item: T) -> T | None:
        with self._cond:
            evicted = None
            if len(self._items) >= self.capacity:
                evicted = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return evicted

    def put_wait(self, item: T) -> None:
        """Block until there is room: for inputs that are not live (a file read as fast as possible),
        where waiting costs nothing and dropping would lose most of the recording."""
        with self._cond:
            while len(self._items) >= self.capacity:
                self._cond.wait(0.1)
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()

    def offer(self, key: Any, item: Any) -> Any | None:
        """Best-effort work for ``key``; returns the offer it replaced (not started), if any."""
        with self._cond:
            replaced = self._slots.pop(key, None)
            self._slots[key] = item
            self._cond.notify()
            return replaced

    def withdraw(self, key: Any, item: Any) -> bool:
        """Take back an offer that was not handed out yet; False when a worker already has it."""
        with self._cond:
            if self._slots.get(key) is item:
                del self._slots[key]
                return True
            return False

    def get(self, timeout: float | None = None) -> T | Any | None:
        """The oldest queued item, else the oldest best-effort offer; None if nothing arrived
        within ``timeout`` seconds."""
        with self._cond:
            if not self._items and not self._slots:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
            elif self._slots:
                item = self._slots.pop(next(iter(self._slots)))
            else:
                item = None
            self._cond.notify_all()  # a put_wait may be waiting for this room
            return item

    def get_batch(self, limit: int, timeout: float | None = None) -> list[T | Any]:
        """What ``get`` returns, then whatever else is ready now, up to ``limit`` items: queued
        finals first, then best-effort offers. Waits only for the first (a lone utterance is never
        held back for company)."""
        first = self.get(timeout)
        if first is None:
            return []
        batch = [first]
        with self._cond:
            while len(batch) < limit and self._items:
                batch.append(self._items.popleft())
            while len(batch) < limit and self._slots:
                batch.append(self._slots.pop(next(iter(self._slots))))
            self._cond.notify_all()
        return batch

    def task_done(self, item: Any, outcome: str) -> None:
        """Nothing to acknowledge in process (a bus queue acks, retries or terminates here)."""

    def is_last_try(self, item: Any) -> bool:
        return True  # no one else will

    def flush(self) -> None:
        """Nothing leaves this process."""

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"depth": len(self._items), "capacity": self.capacity, "dropped": self.dropped,
                    "high_water": self.high_water}

    def backlog(self) -> int:
        with self._cond:
            return len(self._items) + len(self._slots)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
