"""Counters and rolling latency percentiles the pipeline reports in its status heartbeat."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


REMOTE = "bus"  # the source of a stream this process only sees through a bus (a worker's streams)


class LatencyWindow:
    """The last ``size`` samples of one stage's latency (ms); percentiles on demand."""

    def __init__(self, size: int = 500) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, value_ms: float) -> None:
        self._values.append(float(value_ms))
        self.count += 1

    def summary(self) -> dict[str, float] | None:
        if not self._values:
            return None
        v = np.fromiter(self._values, dtype=np.float64)
        p50, p95, p99 = np.percentile(v, [50, 95, 99])
        return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2),
                "n": len(v)}


class StreamStats:
    """Per-stream counts, updated from the source and worker threads."""

    FIELDS = ("utterances", "published", "dropped", "failed", "speculated", "speculation_discarded", "partials",
              "partials_skipped", "partials_stretched", "retried")

    def __init__(self, stream_id: str, source: str) -> None:
        self.stream_id = stream_id
        self.source = source
        self.state = "running"
        self.error: str | None = None
        self.counts = dict.fromkeys(self.FIELDS, 0)
        self.last_active = time.monotonic()


class PipelineStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: dict[str, StreamStats] = {}
        self.latency: dict[str, LatencyWindow] = {}
        self._overlap_ms = 0.0
        self._sec_ms = 0.0

    def add_stream(self, stream_id: str, source: str) -> None:
        with self.lock:
            self.streams[stream_id] = StreamStats(stream_id, source)

    def remove_stream(self, stream_id: str) -> None:
        with self.lock:
            self.streams.pop(stream_id, None)

    def bump(self, stream_id: str, field: str, n: int = 1) -> None:
        with self.lock:
            if stream_id not in self.streams:  # a stream a bus brought to this worker
                self.streams[stream_id] = StreamStats(stream_id, REMOTE)
            st = self.streams[stream_id]
            st.counts[field] += n
            st.last_active = time.monotonic()

    def prune_idle(self, idle_s: float) -> list[str]:
        """Forget streams a bus brought that had no work for ``idle_s`` (a worker runs for months,
        its streams come and go); returns their ids."""
        cutoff = time.monotonic() - idle_s
        with self.lock:
            gone = [sid for sid, st in self.streams.items() if st.source == REMOTE and st.last_active < cutoff]
            for sid in gone:
                del self.streams[sid]
        return gone

    def set_state(self, stream_id: str, state: str, error: str | None = None) -> None:
        """``error`` stays reported until the stream is running again (a microphone that came back)."""
        with self.lock:
            self.streams[stream_id].state = state
            if error:
                self.streams[stream_id].error = error
            elif state == "running":
                self.streams[stream_id].error = None

    def record(self, timings_ms: dict[str, float]) -> None:
        with self.lock:
            for stage, value in timings_ms.items():
                self.latency.setdefault(stage, LatencyWindow()).add(value)
            self._overlap_ms += timings_ms.get("sec_asr_overlap", 0.0)
            self._sec_ms += timings_ms.get("sec", 0.0)

    def latency_summary(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return {k: s for k, w in self.latency.items() if (s := w.summary()) is not None}

    def overlap_share(self) -> float | None:
        """Fraction of SEC time that ran while ASR was running (1.0: SEC fully hidden under ASR)."""
        with self.lock:
            return round(self._overlap_ms / self._sec_ms, 4) if self._sec_ms > 0 else None
