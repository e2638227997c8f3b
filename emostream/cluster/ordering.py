"""Exactly once, in order: what the gateway and the bridge do with results from many workers.

Workers publish at least once (a worker killed after publishing and before its ack is redelivered)
and in parallel (seq 5 may finish before seq 4). A ``ResultOrder`` per consumer drops repeats by
(session, stream_id, seq) and releases each stream's finals in seq order; a final that arrives
ahead of a missing one waits up to ``hold_s`` for it (the missing one may have been dropped,
failed, or be coming back from a dead worker after ``ack_wait``), then goes out anyway. A result
that arrives after a later one was released still goes out once (late, never lost). Partials go out
at once, unless their utterance's final was already released or a newer partial was. A ``gone``
notice (a worker dropped the utterance or gave up on it) fills its seq without output, so nothing
waits ``hold_s`` for a result that will not come.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Stream:
    next_seq: int = 1  # every seq below was released or given up on
    held: dict[int, tuple[dict, float]] = field(default_factory=dict)  # seq -> (message, arrived)
    skipped: set[int] = field(default_factory=set)  # given up on: released late if they still come
    partial_at: tuple[int, float] = (0, 0.0)
    last: float = 0.0  # when a message last arrived
    finals: int = 0  # released
    gone: dict[int, str] = field(default_factory=dict)  # seq -> dropped | failed, as the workers said


class ResultOrder:
    def __init__(self, hold_s: float = 2.0, idle_s: float = 600.0) -> None:
        self.hold_s = hold_s
        self.idle_s = idle_s  # a stream with nothing for this long is forgotten (a bridge runs for months)
        self._streams: dict[tuple, _Stream] = {}
        self.counters = {"released": 0, "duplicates": 0, "late": 0, "gaps": 0, "stale_partials": 0, "gone": 0}

    def add(self, message: dict[str, Any], now: float | None = None) -> list[dict[str, Any]]:
        """Take one result; return what may go out now, in order."""
        now = time.monotonic() if now is None else now
        st = self._streams.setdefault((message.get("session"), message["stream_id"]), _Stream())
        st.last = now
        seq = int(message["seq"])
        if message.get("type") == "partial":
            mark = (seq, float(message.get("audio_s", 0.0)))
            if seq < st.next_seq or seq in st.held or mark <= st.partial_at:
                self.counters["stale_partials"] += 1
                return []
            st.partial_at = mark
            return [message]
        if seq in st.held or (seq < st.next_seq and seq not in st.skipped):
            self.counters["duplicates"] += 1
            return []
        if message.get("type") == "gone":  # dropped or failed: no result will come, nothing to wait for
            self.counters["gone"] += 1
            st.gone[seq] = str(message.get("outcome", "dropped"))
            if seq < st.next_seq:
                st.skipped.discard(seq)
                return []
            st.held[seq] = (None, now)
            return self._release(st, now)
        if seq < st.next_seq:  # given up on when a later one went out: late, but once
            st.skipped.discard(seq)
            self.counters["late"] += 1
            self.counters["released"] += 1
            st.finals += 1
            return [message]
        st.held[seq] = (message, now)
        return self._release(st, now)

    def _release(self, st: _Stream, now: float) -> list[dict[str, Any]]:
        out = []
        while True:
            if st.next_seq in st.held:
                message = st.held.pop(st.next_seq)[0]
                if message is not None:
                    out.append(message)
                st.next_seq += 1
            elif st.held and now - min(t for _, t in st.held.values()) >= self.hold_s:  # noqa: SIM102
                first = min(st.held)
                self.counters["gaps"] += first - st.next_seq
                st.skipped.update(range(st.next_seq, first))
                st.next_seq = first
            else:
                break
        if len(st.skipped) > 4096:  # a very long session with many drops: forget the oldest
            st.skipped = set(sorted(st.skipped)[-2048:])
        self.counters["released"] += len(out)
        st.finals += len(out)
        return out

    def expire(self, now: float | None = None) -> list[dict[str, Any]]:
        """Call now and then: releases finals that waited ``hold_s`` for a missing one."""
        now = time.monotonic() if now is None else now
        out = []
        for key, st in list(self._streams.items()):
            if st.held:
                out.extend(self._release(st, now))
            elif now - st.last > self.idle_s:
                del self._streams[key]
        return out

    def account(self, session: str | None, stream_id: str) -> tuple[int, dict[int, str]]:
        """(finals released, {seq: dropped | failed} announced) for one stream."""
        st = self._streams.get((session, stream_id))
        return (0, {}) if st is None else (st.finals, dict(st.gone))

    def waiting(self) -> int:
        return sum(1 for st in self._streams.values() for m, _ in st.held.values() if m is not None)

    def forget(self, session: str | None, stream_id: str) -> None:
        self._streams.pop((session, stream_id), None)
