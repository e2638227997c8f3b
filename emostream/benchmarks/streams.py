"""Real-time streams: ``vad_close_to_publish`` while 1, 2, 4, … recordings play at real-time pace
into one pipeline (one model set, as ``listen --input a --input b …``), until it stops keeping up;
with partial results on (``listen``'s default: shed when finals wait) and off.

Keeping up means: no utterance dropped by the drop-oldest queue, and the p95 wait in that queue
under 1 s (a backlog that does not grow). The largest N that keeps up is the number of real-time
streams this machine sustains. The single-stream run is repeated with the branches sequential
(same recording, same models) for the concurrent / sequential ratio under real-time pacing.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import soundfile as sf

from emostream.benchmarks.runner import ratio, summarize
from emostream.benchmarks.utterances import dialogue

KEEP_UP_QUEUE_WAIT_P95_MS = 1000.0
KEEP_UP_RULE = f"no drops, no failures and p95 queue wait < {KEEP_UP_QUEUE_WAIT_P95_MS:.0f} ms"


class _Collect:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def emit(self, topic: str, message: dict) -> None:
        self.messages.append(message)

    def close(self) -> None:
        pass


def run_streams(recognizer, n_streams: int, sentences: int, endpoint: str, concurrent: bool = True,
                workers: int = 1, partials: bool = True, **overrides: int | None) -> dict:
    """``overrides``: PipelineConfig fields to set (batch_size, batch_from, max_pending); None keeps
    the default."""
    from emostream.sinks.publisher import Publisher
    from emostream.streaming.pipeline import Pipeline, PipelineConfig
    from emostream.streaming.segmenter import SegmenterConfig
    from emostream.streaming.sources import FileSource

    sink = _Collect()
    with tempfile.TemporaryDirectory() as tmp:
        sources, audio_s = [], 0.0
        for i in range(n_streams):
            path = Path(tmp) / f"stream{i}.wav"
            audio = dialogue(i, sentences)
            sf.write(path, audio, 16000)
            sources.append(FileSource(path, f"s{i}", realtime=True))
            audio_s = max(audio_s, len(audio) / 16000)
        config = PipelineConfig(concurrent_branches=concurrent, workers=workers,
                                segmenter=SegmenterConfig(partial_interval_s=0.5 if partials else 0.0),
                                **{k: v for k, v in overrides.items() if v is not None})
        pipeline = Pipeline(recognizer, sources, [sink], config, publisher=Publisher(endpoint))
        t0 = time.monotonic()
        thread = threading.Thread(target=pipeline.run)
        thread.start()
        thread.join()
        wall = time.monotonic() - t0
    emotions = [m for m in sink.messages if m["type"] == "emotion"]
    final = [m for m in sink.messages if m["type"] == "status"][-1]
    totals = {k: sum(st[k] for st in final["streams"].values())
              for k in ("utterances", "published", "dropped", "failed", "speculated", "partials", "partials_skipped",
                        "partials_stretched")}
    stages = dict.fromkeys(k for m in emotions for k in m["timings_ms"])  # head_start: speculated finals only
    timings = {k: [m["timings_ms"][k] for m in emotions if k in m["timings_ms"]] for k in stages}
    queue_wait = summarize(timings.get("queue_wait", []))
    keeps_up = (totals["dropped"] == 0 and totals["failed"] == 0 and totals["published"] > 0
                and queue_wait.get("p95", 0) < KEEP_UP_QUEUE_WAIT_P95_MS)
    batches = [m.get("batch", 1) for m in emotions]
    return {"streams": n_streams, "concurrent_branches": concurrent, "partials": partials,
            "batch_size": pipeline.batch_size, "max_pending": config.max_pending, "workers": workers,
            "finals_batch_mean": round(sum(batches) / max(1, len(batches)), 2),
            "finals_held_for_order": pipeline.order.waited,  # several workers: waited for an earlier final
            "audio_s": round(audio_s, 1),
            "wall_s": round(wall, 1), "utterances": totals, "keeps_up": keeps_up,
            "utterance_s": summarize([m["utterance"]["duration_s"] * 1e3 for m in emotions]),
            "latency_ms": {k: summarize(v) for k, v in timings.items()},
            "raw_vad_close_to_publish_ms": timings.get("vad_close_to_publish", [])}


def stream_steps(max_streams: int) -> list[int]:
    """1, 2, 4, 8, 16, then steps of 8 (24, 32, ...) up to ``max_streams``."""
    steps = [n for n in (1, 2, 4, 8, 16) if n <= max_streams]
    steps += list(range(24, max_streams + 1, 8))
    return steps


def stream_scaling(recognizer, max_streams: int, sentences: int, endpoints, progress=None,
                   partials: bool = True, batch_size: int | None = None, workers: int = 1) -> dict:
    """``partials``: as ``listen`` runs by default (every 0.5 s, shed under load) or off;
    ``workers``: as ``--concurrency`` (the recognizer wants as many ASR replicas)."""
    runs = []
    for n in stream_steps(max_streams):
        run = run_streams(recognizer, n, sentences, next(endpoints), partials=partials, batch_size=batch_size,
                          workers=workers)
        runs.append(run)
        if progress:
            progress(n, run)
        if not run["keeps_up"]:
            break
    sequential = run_streams(recognizer, 1, sentences, next(endpoints), concurrent=False, partials=partials,
                             batch_size=batch_size)
    if progress:
        progress(1, sequential)
    kept = [r["streams"] for r in runs if r["keeps_up"]]
    single = runs[0]["latency_ms"].get("vad_close_to_publish", {}) if runs else {}
    return {
        "runs": runs, "sequential_single_stream": sequential,
        "max_realtime_streams": max(kept) if kept else 0,
        "max_realtime_streams_is_lower_bound": bool(runs[-1]["keeps_up"]),
        "keep_up_rule": KEEP_UP_RULE,
        "single_stream_concurrent_over_sequential": ratio(single,
                                                          sequential["latency_ms"].get("vad_close_to_publish", {}),
                                                          ("median", "p95", "p99")),
    }
