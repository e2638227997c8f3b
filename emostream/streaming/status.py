"""The status message: a heartbeat every ``status_interval_s`` and a last one when the pipeline
stops, with per-stream counters, the queue, the publisher and the latency summary."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from emostream.protocol import SCHEMA_VERSION, STATUS_SCHEMA_ID

if TYPE_CHECKING:
    from emostream.streaming.pipeline import Pipeline


def status_message(pipeline: Pipeline, state: str, seq: int) -> dict[str, Any]:
    p = pipeline
    extras = p.hooks.status_fields()
    streams = {}
    with p.sources_lock, p.stats.lock:
        sources = {s.stream_id: s for s in p.sources}
        for sid, st in p.stats.streams.items():
            segmenter, source = p.segmenters.get(sid), sources.get(sid)
            seg = segmenter.stats if segmenter is not None else {}  # None: a stream a bus brought
            streams[sid] = {"source": st.source, "state": st.state, "error": st.error, **st.counts,
                            "too_short": seg.get("too_short", 0), "forced_cuts": seg.get("forced_cuts", 0),
                            "turn_continuations": seg.get("turn_continuations", 0),
                            "source_counters": dict(source.counters) if source is not None else {}}
    if state == "running" and p.stopping:
        state = "stopping"
    return {
        "schema": STATUS_SCHEMA_ID, "schema_version": SCHEMA_VERSION, "type": "status",
        "seq": seq, "state": state,
        "uptime_s": round(time.monotonic() - p.started, 3), "published_at": time.time(),
        "streams": streams,
        "role": p.config.role, **({"worker": p.config.worker_id} if p.config.worker_id else {}),
        "queue": p.queue.stats(),
        "publisher": p.publisher.stats() if p.publisher is not None else
        {"endpoint": None, "sent": 0, "send_failures": 0},
        "latency_ms": p.stats.latency_summary(),
        "sec_asr_overlap_share": p.stats.overlap_share(),
        **extras,
    }
