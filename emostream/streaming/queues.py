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

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, or None if nothing arrived within ``timeout`` seconds."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
