"""The live pipeline: sources -> segmenters -> bounded queue -> (SEC || ASR -> text) -> fusion -> sinks.

Threads: one per source (read, segment, enqueue), ``workers`` model workers (default one), each
with a helper thread for the SEC branch, and a heartbeat thread. Models are loaded once (the
Recognizer) and shared by every stream. The queue between segmenters and workers holds at most
``max_pending`` utterances; when the machine cannot keep up the oldest pending one is dropped,
counted per stream and reported in status, so latency stays bounded. Inputs that are not live (a
file read with ``--fast``) wait for room instead: nothing is gained by dropping them. Stopping (``stop()``, e.g.
on Ctrl-C) makes sources close their open utterance; the workers finish what is queued, publish
it, then sinks are closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from emostream.clients.schema import (SCHEMA_VERSION, STATUS_SCHEMA_ID, STATUS_TOPIC, emotion_message,
                                      emotion_topic)
from emostream.streaming.audio import AudioError, validate_waveform
from emostream.streaming.frames import Utterance
from emostream.streaming.queues import DropOldestQueue
from emostream.streaming.segmenter import Segmenter, SegmenterConfig
from emostream.streaming.sources.base import AudioSource, SourceError
from emostream.streaming.stats import PipelineStats

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where messages go: the ZeroMQ publisher, the terminal monitor, a JSONL log."""

    def emit(self, topic: str, message: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PipelineConfig:
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    max_pending: int = 4
    workers: int = 1
    status_interval_s: float = 2.0
    concurrent_branches: bool = True  # False: SEC, then ASR -> text, one after the other (for comparison)

    def __post_init__(self) -> None:
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {self.max_pending}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.status_interval_s <= 0:
            raise ValueError(f"status interval must be positive, got {self.status_interval_s}")


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


class Pipeline:
    def __init__(self, recognizer, sources: Sequence[AudioSource], sinks: Sequence[Sink],
                 config: PipelineConfig | None = None, publisher=None) -> None:
        ids = [s.stream_id for s in sources]
        if not sources:
            raise ValueError("the pipeline needs at least one source")
        if len(set(ids)) != len(ids):
            raise ValueError(f"stream ids must be unique, got {ids}")
        self.recognizer = recognizer
        self.sources = list(sources)
        self.config = config or PipelineConfig()
        self.publisher = publisher
        self.sinks = ([publisher] if publisher is not None else []) + list(sinks)
        self.queue: DropOldestQueue[Utterance] = DropOldestQueue(self.config.max_pending)
        self.segmenters = {s.stream_id: Segmenter(s.stream_id, self.config.segmenter) for s in self.sources}
        self.stats = PipelineStats()
        for s in self.sources:
            self.stats.add_stream(s.stream_id, s.description)
        self._stop = threading.Event()
        self._sources_done = threading.Event()
        self._done = threading.Event()
        self._emit_lock = threading.Lock()
        self._status_seq = 0
        self._started = time.monotonic()
        self.errors: list[str] = []

    # --- control --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask sources to stop; queued and in-progress utterances are still processed and published."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> int:
        """Block until every source has ended (or stop() was called) and all work is published.
        Returns the number of sources that ended in error."""
        self._started = time.monotonic()
        source_threads = [threading.Thread(target=self._run_source, args=(s,), name=f"source-{s.stream_id}",
                                           daemon=True) for s in self.sources]
        workers = [threading.Thread(target=self._run_worker, name=f"worker-{i}", daemon=True)
                   for i in range(self.config.workers)]
        heartbeat = threading.Thread(target=self._run_heartbeat, name="heartbeat", daemon=True)
        for t in source_threads + workers + [heartbeat]:
            t.start()
        try:
            for t in source_threads:
                while t.is_alive():
                    t.join(0.2)
            self._sources_done.set()
            for t in workers:
                while t.is_alive():
                    t.join(0.2)
        finally:
            self._sources_done.set()
            self._stop.set()
            self._done.set()
            heartbeat.join(2.0)
            self._emit(STATUS_TOPIC, self.status_message("stopped"))
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as exc:
                    log.warning("closing %s: %s", type(sink).__name__, exc)
        return len(self.errors)

    # --- threads --------------------------------------------------------------------------------
    def _enqueue(self, utterance: Utterance, live: bool = True) -> None:
        self.stats.bump(utterance.stream_id, "utterances")
        if not live:
            self.queue.put_wait(utterance)
            return
        evicted = self.queue.put(utterance)
        if evicted is not None:
            self.stats.bump(evicted.stream_id, "dropped")
            log.warning("falling behind: dropped utterance %s#%d (%.1f s) to keep latency bounded",
                        evicted.stream_id, evicted.seq, evicted.duration_s)

    def _run_source(self, source: AudioSource) -> None:
        segmenter = self.segmenters[source.stream_id]
        try:
            live = getattr(source, "live", True)
            for chunk in source.chunks(self._stop):
                for utterance in segmenter.feed(chunk):
                    self._enqueue(utterance, live)
            self.stats.set_state(source.stream_id, "ended")
        except SourceError as exc:
            self.errors.append(str(exc))
            self.stats.set_state(source.stream_id, "error", str(exc))
            log.error("%s", exc)
        except Exception as exc:  # never lose the utterance in progress to an unexpected error
            self.errors.append(f"{source.description}: {exc}")
            self.stats.set_state(source.stream_id, "error", f"{type(exc).__name__}: {exc}")
            log.exception("source %s failed", source.stream_id)
        finally:
            for utterance in segmenter.flush():
                self._enqueue(utterance, getattr(source, "live", True))
            source.close()

    def _run_worker(self) -> None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sec") as sec_pool:
            while True:
                utterance = self.queue.get(timeout=0.1)
                if utterance is None:
                    if self._sources_done.is_set() and len(self.queue) == 0:
                        return
                    continue
                try:
                    self.process(utterance, sec_pool)
                except AudioError as exc:
                    self.stats.bump(utterance.stream_id, "failed")
                    log.warning("utterance %s#%d not classified: %s", utterance.stream_id, utterance.seq, exc)
                except Exception:
                    self.stats.bump(utterance.stream_id, "failed")
                    log.exception("utterance %s#%d failed", utterance.stream_id, utterance.seq)

    def _run_heartbeat(self) -> None:
        # keeps beating while queued work drains after stop() (state "stopping")
        while not self._done.wait(self.config.status_interval_s):
            self._emit(STATUS_TOPIC, self.status_message("running"))

    # --- one utterance --------------------------------------------------------------------------
    def process(self, utterance: Utterance, sec_pool: ThreadPoolExecutor) -> dict[str, Any]:
        """Both branches at once, fusion, publish. Returns the published message."""
        rec = self.recognizer
        wave = utterance.samples
        t_start = time.perf_counter()

        def sec_branch():
            t0 = time.perf_counter()
            out = rec.sec(wave)
            return out, (t0, time.perf_counter())

        validate_waveform(wave)
        sec_future = sec_pool.submit(sec_branch)
        if not self.config.concurrent_branches:
            sec_future.result()  # the comparison mode: SEC finishes before ASR starts
        t_asr0 = time.perf_counter()
        try:
            transcript = rec.transcribe(wave)
            t_asr1 = time.perf_counter()
            tec = rec.text(transcript.text)
            t_text = time.perf_counter()
        finally:  # wait for SEC even if ASR failed: it runs on this worker's pool
            sec, sec_span = sec_future.result()
        branches_end = max(t_text, sec_span[1])
        probs, valence, arousal = rec.fuse(sec, tec, transcript.confidence)
        t_fused = time.perf_counter()
        result = rec.result(probs, valence, arousal, transcript, {})
        timings = {
            "queue_wait": (t_start - utterance.closed_perf) * 1e3,
            "sec": (sec_span[1] - sec_span[0]) * 1e3,
            "asr": (t_asr1 - t_asr0) * 1e3,
            "text": (t_text - t_asr1) * 1e3,
            "fusion": (t_fused - branches_end) * 1e3,
            "branches": (branches_end - t_start) * 1e3,
            "sec_asr_overlap": _overlap(sec_span, (t_asr0, t_asr1)) * 1e3,
        }
        timings["vad_close_to_publish"] = (time.perf_counter() - utterance.closed_perf) * 1e3
        message = emotion_message(utterance, result, timings, published_at=time.time())
        self._emit(emotion_topic(utterance.stream_id), message)
        self.stats.bump(utterance.stream_id, "published")
        self.stats.record(message["timings_ms"])
        return message

    def _emit(self, topic: str, message: dict[str, Any]) -> None:
        with self._emit_lock:  # keeps sinks seeing messages in one order
            for sink in self.sinks:
                try:
                    sink.emit(topic, message)
                except Exception as exc:  # a broken sink (full disk, closed terminal) must not stop the others
                    log.warning("%s could not take a message: %s", type(sink).__name__, exc)

    # --- status ---------------------------------------------------------------------------------
    def status_message(self, state: str) -> dict[str, Any]:
        with self._emit_lock:
            self._status_seq += 1
            seq = self._status_seq
        streams = {}
        with self.stats.lock:
            for sid, st in self.stats.streams.items():
                seg = self.segmenters[sid].stats
                source = next(s for s in self.sources if s.stream_id == sid)
                streams[sid] = {"source": st.source, "state": st.state, "error": st.error, **st.counts,
                                "too_short": seg["too_short"], "forced_cuts": seg["forced_cuts"],
                                "turn_continuations": seg["turn_continuations"],
                                "source_counters": dict(source.counters)}
        if state == "running" and self._stop.is_set():
            state = "stopping"
        return {
            "schema": STATUS_SCHEMA_ID, "schema_version": SCHEMA_VERSION, "type": "status",
            "seq": seq, "state": state,
            "uptime_s": round(time.monotonic() - self._started, 3), "published_at": time.time(),
            "streams": streams,
            "queue": {"depth": len(self.queue), "capacity": self.queue.capacity, "dropped": self.queue.dropped,
                      "high_water": self.queue.high_water},
            "publisher": self.publisher.stats() if self.publisher is not None else
            {"endpoint": None, "sent": 0, "send_failures": 0},
            "latency_ms": self.stats.latency_summary(),
            "sec_asr_overlap_share": self.stats.overlap_share(),
        }
