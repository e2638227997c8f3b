"""A bounded queue whose policy when full is explicit: drop the oldest item and say so."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """Thread-safe FIFO of at most ``capacity`` items. ``put`` never blocks: when full it evicts
    the oldest item and returns it so the caller can count and report the drop. Keeping the newest
    utterance bounds latency: a dialogue system wants what was said now, not a backlog."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[T] = deque()
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

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, or None if nothing arrived within ``timeout`` seconds."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            item = self._items.popleft() if self._items else None
            self._cond.notify_all()  # a put_wait may be waiting for this room
            return item

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
