"""The live pipeline: sources -> segmenters -> bounded queue -> Recognizer.recognize -> sinks.

Threads: one per source (read, segment, enqueue), ``workers`` model workers (default one), each
with a helper thread for the SEC branch, and a heartbeat thread. With several workers a stream's
finals still leave in seq order (``final_order.py``). Once ``batch_from`` finals wait,
a worker takes what is ready, up to ``batch_size`` (finals first, then early work), and recognizes
it in one ``recognize_batch``; before that, one at a time. Models are loaded once (the
Recognizer) and shared by every stream. The queue between segmenters and workers holds at most
``max_pending`` utterances; when the machine cannot keep up the oldest pending one is dropped,
counted per stream and reported in status, so latency stays bounded. Inputs that are not live (a
file read with ``--fast``) wait for room instead: nothing is gained by dropping them. Stopping
(``stop()``, e.g. on Ctrl-C) makes sources close their open utterance; the workers finish what is
queued, publish it, then sinks are closed.

Partials and speculative finals are ``early.py``; the status message is ``status.py``. The queue,
the sinks and the hooks are the seams to a cluster (``emostream.cluster``): the same class runs
with a JetStream queue as a producer only (``recognizer=None``: sources and segmenters, e.g. the
gateway), or as a consumer only (no sources, ``open_ended``: a worker), with results published on
NATS by a sink.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from emostream.protocol import STATUS_TOPIC, emotion_message, emotion_topic
from emostream.streaming.audio import AudioError
from emostream.streaming.early import EarlyJob, EarlyWork
from emostream.streaming.final_order import FinalOrder
from emostream.streaming.frames import SpeechEvent, Utterance
from emostream.streaming.hooks import PipelineHooks
from emostream.streaming.queues import DropOldestQueue, WorkQueue
from emostream.streaming.segmenter import Segmenter, SegmenterConfig
from emostream.streaming.sources.base import AudioSource, SourceError
from emostream.streaming.stats import PipelineStats
from emostream.streaming.status import status_message

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where messages go: the ZeroMQ publisher, the terminal monitor, a JSONL log, the bus."""

    def emit(self, topic: str, message: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PipelineConfig:
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    max_pending: int = 16  # 4 dropped finals of 16 real-time streams in bursts (docs/benchmarks.md)
    # the CLI's --concurrency; the ASR wants as many replicas. One: on 2 cores two at once held 24
    # streams where one did not, but a lone stream was slower (docs/benchmarks.md §5b)
    workers: int = 1
    # a worker recognizes up to this many ready utterances together (finals first)
    batch_size: int = 8
    # ... once this many finals wait; fewer are taken one at a time. None: batch_size // 2 on a CPU,
    # where a batch costs each of its finals the whole batch's time and pays only when the machine
    # is behind (docs/benchmarks.md), 1 where the ASR runs on CUDA
    batch_from: int | None = None
    status_interval_s: float = 2.0
    concurrent_branches: bool = True  # False: SEC, then ASR -> text, one after the other (for comparison)
    worker_id: str | None = None  # cluster mode: named in every result (with the delivery count)
    role: str = "listen"  # in status: listen, worker, gateway, edge

    def __post_init__(self) -> None:
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {self.max_pending}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.batch_from is not None and self.batch_from < 1:
            raise ValueError(f"batch_from must be at least 1, got {self.batch_from}")
        if self.status_interval_s <= 0:
            raise ValueError(f"status interval must be positive, got {self.status_interval_s}")


class Pipeline:
    def __init__(self, recognizer, sources: Sequence[AudioSource], sinks: Sequence[Sink],
                 config: PipelineConfig | None = None, publisher=None, queue: WorkQueue | None = None,
                 open_ended: bool = False, hooks: PipelineHooks | None = None) -> None:
        """``open_ended``: run until ``stop()``, with sources added by ``add_source`` (gateway, worker).
        ``recognizer=None``: no workers here; ``queue`` carries the utterances to them."""
        ids = [s.stream_id for s in sources]
        if not sources and not open_ended:
            raise ValueError("the pipeline needs at least one source")
        if recognizer is None and queue is None:
            raise ValueError("without a recognizer the pipeline needs a queue to the workers that have one")
        if len(set(ids)) != len(ids):
            raise ValueError(f"stream ids must be unique, got {ids}")
        self.recognizer = recognizer
        self.sources = list(sources)
        self.config = config or PipelineConfig()
        self.publisher = publisher
        self.sinks = ([publisher] if publisher is not None else []) + list(sinks)
        self.open_ended = open_ended
        self.batch_size = self.config.batch_size
        on_gpu = getattr(getattr(recognizer, "asr", None), "device", "cpu") == "cuda"
        self.batch_from = self.config.batch_from or (1 if on_gpu else max(1, self.batch_size // 2))
        self.queue: WorkQueue = queue if queue is not None else DropOldestQueue(self.config.max_pending)
        self.queue.on_drop = self._dropped_later
        self.queue.on_failed = self._failed_elsewhere
        self.segmenters = {s.stream_id: self._segmenter_for(s) for s in self.sources}
        self.stats = PipelineStats()
        for s in self.sources:
            self.stats.add_stream(s.stream_id, s.description)
        self.sources_lock = threading.Lock()
        self.emit_lock = threading.RLock()  # sinks see messages in one order; a final and its partials' end move together
        self.early = EarlyWork(self)
        # several workers in this process: a stream's finals still leave in seq order
        self.order = FinalOrder(enabled=recognizer is not None and self.config.workers > 1)
        self._source_threads: dict[str, threading.Thread] = {}
        self._running = False
        self._stop = threading.Event()
        self._sources_done = threading.Event()
        self._done = threading.Event()
        self._status_seq = 0
        self.started = time.monotonic()
        self.errors: list[str] = []
        self.hooks = hooks or PipelineHooks()
        self.hooks.attach(self)  # last: an edge's relay may deliver results from now on

    # --- control --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask sources to stop; queued and in-progress utterances are still processed and published."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def add_source(self, source: AudioSource) -> None:
        """A new stream (a network client): segmented and queued like the others from now on."""
        with self.sources_lock:
            if source.stream_id in self.segmenters:
                raise ValueError(f"stream id {source.stream_id!r} is already in use")
            self.segmenters[source.stream_id] = self._segmenter_for(source)
            self.sources.append(source)
            self.stats.add_stream(source.stream_id, source.description)
            if self._running:
                self._start_source(source)

    def _segmenter_for(self, source: AudioSource) -> Segmenter:
        return Segmenter(source.stream_id, self.config.segmenter, session=getattr(source, "session", None))

    def stream_counts(self, stream_id: str) -> dict[str, Any]:
        """One stream's counters and state (a gateway waits on them before closing a connection)."""
        with self.stats.lock:
            st = self.stats.streams.get(stream_id)
            thread = self._source_threads.get(stream_id)
            return {} if st is None else {"state": st.state, "source_running": thread is not None and thread.is_alive(),
                                          **st.counts}

    def retire_source(self, stream_id: str, wait_s: float = 10.0) -> None:
        """Forget an ended stream (its id may be used again) once its thread has queued the last
        utterance (up to ``wait_s``); its counts leave the status."""
        with self.sources_lock:
            thread = self._source_threads.get(stream_id)
        if thread is not None:
            thread.join(wait_s)
        with self.sources_lock:
            self.sources = [s for s in self.sources if s.stream_id != stream_id]
            self.segmenters.pop(stream_id, None)
            self._source_threads.pop(stream_id, None)
            self.stats.remove_stream(stream_id)
        self.early.forget(stream_id)

    def _start_source(self, source: AudioSource) -> None:
        t = threading.Thread(target=self._run_source, args=(source,), name=f"source-{source.stream_id}", daemon=True)
        self._source_threads[source.stream_id] = t
        t.start()

    def run(self) -> int:
        """Block until every source has ended (or stop() was called) and all work is published.
        Returns the number of sources that ended in error."""
        self.started = time.monotonic()
        n_workers = self.config.workers if self.recognizer is not None else 0
        workers = [threading.Thread(target=self._run_worker, name=f"worker-{i}", daemon=True)
                   for i in range(n_workers)]
        heartbeat = threading.Thread(target=self._run_heartbeat, name="heartbeat", daemon=True)
        with self.sources_lock:
            self._running = True
            for s in self.sources:
                self._start_source(s)
        for t in workers + [heartbeat]:
            t.start()
        try:
            if self.open_ended:
                while not self._stop.wait(0.2):
                    pass
            while True:
                with self.sources_lock:
                    alive = [t for t in self._source_threads.values() if t.is_alive()]
                if not alive:
                    break
                alive[0].join(0.2)
            self._sources_done.set()
            for t in workers:
                while t.is_alive():
                    t.join(0.2)
            self.queue.flush()  # a bus: what the sources queued goes out before we stop
            self.hooks.drained()  # e.g. wait for results coming back from a bus
        finally:
            self._sources_done.set()
            self._stop.set()
            self._done.set()
            heartbeat.join(2.0)
            self.emit(STATUS_TOPIC, self.status_message("stopped"))
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as exc:
                    log.warning("closing %s: %s", type(sink).__name__, exc)
        return len(self.errors)

    # --- sources --------------------------------------------------------------------------------
    def _dropped_later(self, utterance: Utterance, reason: str) -> None:
        self.order.closed(utterance)
        self.stats.bump(utterance.stream_id, "dropped")
        self.hooks.gone(utterance, "dropped", reason)

    def _failed_elsewhere(self, utterance: Utterance, reason: str) -> None:
        self.stats.bump(utterance.stream_id, "failed")
        self.hooks.gone(utterance, "failed", reason)

    def _enqueue(self, utterance: Utterance, live: bool = True) -> None:
        sid = utterance.stream_id
        self.stats.bump(sid, "utterances")
        self.order.opened(utterance)
        self.early.close_seq(utterance)
        try:
            if self.early.adopt(utterance):
                return
        except Exception:  # never lose the final to a bug in the early path: recognize it again
            log.exception("speculative result for %s#%d not used", sid, utterance.seq)
        if not live:
            self.queue.put_wait(utterance)
            return
        evicted = self.queue.put(utterance)
        if evicted is not None:
            self.order.closed(evicted)
            self.stats.bump(evicted.stream_id, "dropped")
            log.warning("falling behind: dropped utterance %s#%d (%.1f s) to keep latency bounded",
                        evicted.stream_id, evicted.seq, evicted.duration_s)

    def _run_source(self, source: AudioSource) -> None:
        sid, segmenter = source.stream_id, self.segmenters[source.stream_id]
        live = getattr(source, "live", True)

        def lost(exc: SourceError) -> None:  # a vanished microphone: publish what it said, wait for it
            for utterance in segmenter.flush():
                self._enqueue(utterance, live)
            self.early.void(sid)
            self.stats.set_state(sid, "retrying", str(exc))

        try:
            for chunk in source.chunks_across_losses(self._stop, lost, lambda: self.stats.set_state(sid, "running")):
                for item in segmenter.feed_events(chunk):
                    if isinstance(item, Utterance):
                        self._enqueue(item, live)
                    elif live:  # a file read as fast as possible gains nothing from early work
                        self.early.on_event(item)
            self.stats.set_state(sid, "ended")
        except SourceError as exc:
            self.errors.append(str(exc))
            self.stats.set_state(sid, "error", str(exc))
            log.error("%s", exc)
        except Exception as exc:  # never lose the utterance in progress to an unexpected error
            self.errors.append(f"{source.description}: {exc}")
            self.stats.set_state(sid, "error", f"{type(exc).__name__}: {exc}")
            log.exception("source %s failed", sid)
        finally:
            for utterance in segmenter.flush():
                self._enqueue(utterance, live)
            source.close()

    # --- workers --------------------------------------------------------------------------------
    def _run_worker(self) -> None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sec") as sec_pool:
            while True:
                if self._sources_done.is_set() and self.open_ended and not self.sources:
                    return  # a bus consumer that was stopped: finish what it holds (done), take nothing new
                items = self.queue.get_batch(self.take_size(), timeout=0.1)
                if not items:
                    if self._sources_done.is_set() and len(self.queue) == 0:
                        return
                    continue
                self.run_batch([EarlyJob("partial", item.utterance) if isinstance(item, SpeechEvent) else item
                                for item in items], sec_pool)  # a SpeechEvent: a partial snapshot from a bus

    def take_size(self) -> int:
        """How many items a worker's next take may hold: a batch once ``batch_from`` finals wait
        (then a batch gains throughput), else one."""
        return self.batch_size if len(self.queue) >= self.batch_from else 1

    def run_batch(self, items: list[Utterance | EarlyJob], sec_pool: Executor) -> None:
        """Finals and early jobs of any streams, recognized together, each then published (or
        counted) on its own, in the order taken."""
        work = []
        for item in items:
            if isinstance(item, EarlyJob):
                if self.early.start(item):
                    work.append(item)
            else:
                self.early.close_seq(item)  # from a bus: later partials of this utterance are stale here
                work.append(item)
        if not work:
            return
        utterances = [w.utterance if isinstance(w, EarlyJob) else w for w in work]
        partial = [isinstance(w, EarlyJob) and w.kind == "partial" for w in work]
        try:
            outcomes = self.recognizer.recognize_batch([u.samples for u in utterances],
                                                       sec_pool if self.config.concurrent_branches else None, partial)
        except Exception as exc:
            if len(work) > 1:  # one poison input must not cost the others their results: each alone
                log.warning("a batch of %d failed (%s): recognizing each alone", len(work), exc)
                outcomes = [self._recognize_alone(u, p, sec_pool) for u, p in zip(utterances, partial)]
            else:
                outcomes = [exc]
        for w, outcome in zip(work, outcomes):
            if isinstance(w, EarlyJob):
                if isinstance(outcome, Exception):
                    log.debug("early %s work on %s#%d failed: %s", w.kind, w.utterance.stream_id, w.utterance.seq,
                              outcome)
                self.early.finish(w, None if isinstance(outcome, Exception) else outcome, sec_pool)
            else:
                self.finish_final(w, outcome)

    def _recognize_alone(self, utterance: Utterance, partial: bool, sec_pool: Executor):
        try:
            return self.recognize(utterance, sec_pool, partial=partial)
        except Exception as exc:
            return exc

    def recognize(self, utterance: Utterance, sec_pool: Executor, partial: bool = False):
        """The recognizer on this utterance's audio, SEC on this worker's pool (or before ASR, in
        the sequential comparison mode)."""
        return self.recognizer.recognize(utterance.samples, sec_pool if self.config.concurrent_branches else None,
                                         partial=partial)

    def process_final(self, utterance: Utterance, sec_pool: Executor) -> None:
        self.early.close_seq(utterance)
        self.finish_final(utterance, self._recognize_alone(utterance, False, sec_pool))

    def finish_final(self, utterance: Utterance, outcome) -> None:
        """Publish a final's recognition, or count and announce why there is none (``outcome``:
        the Recognition, or the exception its recognition raised)."""
        result = "published"
        try:
            if not isinstance(outcome, Exception):
                try:
                    self.publish_final(utterance, outcome)
                except Exception as exc:
                    outcome = exc
            if isinstance(outcome, AudioError):
                result = "unusable"
                self.stats.bump(utterance.stream_id, "failed")
                log.warning("utterance %s#%d not classified: %s", utterance.stream_id, utterance.seq, outcome)
                self.hooks.gone(utterance, "failed", str(outcome))
            elif isinstance(outcome, Exception):
                result = "failed"
                last_try = self.queue.is_last_try(utterance)
                self.stats.bump(utterance.stream_id, "failed" if last_try else "retried")
                log.error("utterance %s#%d failed%s", utterance.stream_id, utterance.seq,
                          "" if last_try else " (another worker will try it)", exc_info=outcome)
                if last_try:
                    self.hooks.gone(utterance, "failed", f"{type(outcome).__name__}: {outcome}")
        finally:
            self.order.closed(utterance)
            self.queue.task_done(utterance, result)

    def _run_heartbeat(self) -> None:
        # keeps beating while queued work drains after stop() (state "stopping")
        while not self._done.wait(self.config.status_interval_s):
            self.emit(STATUS_TOPIC, self.status_message("running"))

    # --- publishing -----------------------------------------------------------------------------
    def publish_final(self, utterance: Utterance, done, speculated: bool = False) -> dict[str, Any]:
        """``done``: the engine's Recognition of the utterance. Returns the published message."""
        with self.order.turn(utterance):
            return self._publish_final(utterance, done, speculated)

    def _publish_final(self, utterance: Utterance, done, speculated: bool) -> dict[str, Any]:
        timings = {"queue_wait": (done.started - utterance.closed_perf) * 1e3, **done.timings_ms}
        if speculated:
            timings["head_start"] = (utterance.closed_perf - done.started) * 1e3
        with self.emit_lock:  # the final and the partial bookkeeping move together
            timings["vad_close_to_publish"] = (time.perf_counter() - utterance.closed_perf) * 1e3
            worker = None if self.config.worker_id is None else \
                {"id": self.config.worker_id, "delivery": utterance.delivery}
            message = emotion_message(utterance, done.result, timings, published_at=time.time(),
                                      asr_context=done.asr_context, speculated=speculated, worker=worker,
                                      batch=done.batch)
            self.emit(emotion_topic(utterance.stream_id), message)
        self.stats.bump(utterance.stream_id, "published")
        if speculated:
            self.stats.bump(utterance.stream_id, "speculated")
        self.stats.record(message["timings_ms"])
        return message

    def emit(self, topic: str, message: dict[str, Any]) -> None:
        with self.emit_lock:  # keeps sinks seeing messages in one order
            for sink in self.sinks:
                try:
                    sink.emit(topic, message)
                except Exception as exc:  # a broken sink (full disk, closed terminal) must not stop the others
                    log.warning("%s could not take a message: %s", type(sink).__name__, exc)

    def status_message(self, state: str) -> dict[str, Any]:
        with self.emit_lock:
            self._status_seq += 1
            seq = self._status_seq
        return status_message(self, state, seq)
