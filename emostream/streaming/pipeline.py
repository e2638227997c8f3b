"""The live pipeline: sources -> segmenters -> bounded queue -> (SEC || ASR -> text) -> fusion -> sinks.

Threads: one per source (read, segment, enqueue), ``workers`` model workers (default one), each
with a helper thread for the SEC branch, and a heartbeat thread. Models are loaded once (the
Recognizer) and shared by every stream. The queue between segmenters and workers holds at most
``max_pending`` utterances; when the machine cannot keep up the oldest pending one is dropped,
counted per stream and reported in status, so latency stays bounded. Inputs that are not live (a
file read with ``--fast``) wait for room instead: nothing is gained by dropping them. Stopping (``stop()``, e.g.
on Ctrl-C) makes sources close their open utterance; the workers finish what is queued, publish
it, then sinks are closed.

Early work, taken only by a worker with nothing else to do (see ``queues``), so a final waits at most
for the one early recognition already running: when the segmenter announces an end
candidate and a worker is free, the final recognition starts then; if the VAD closes with no new
speech its result is published at once (``speculated``), if speech resumes it is thrown away. While
an utterance is open, its audio so far is recognized every ``partial_interval_s`` and published on
``partial.<stream_id>`` with a LocalAgreement-2 stable prefix. A stream's partials for an utterance
are published in order and only until the VAD closes it (so before its final, even one that is
dropped or fails).

The queue and the sinks are the seams to a cluster (``emostream.cluster``): the same class runs with
a JetStream queue as a producer only (``recognizer=None``: sources and segmenters, e.g. the
gateway), or as a consumer only (no sources, ``open_ended``: a worker), with results published on
NATS by a sink. Speculative finals need the close and the models in one process, so they run only
on a queue that ``supports_speculation``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from emostream.clients.schema import (SCHEMA_VERSION, STATUS_SCHEMA_ID, STATUS_TOPIC, emotion_message,
                                      emotion_topic, partial_message, partial_topic)
from emostream.streaming.agreement import LocalAgreement
from emostream.streaming.audio import AudioError, validate_waveform
from emostream.streaming.frames import SpeechEvent, Utterance
from emostream.streaming.queues import DropOldestQueue
from emostream.streaming.segmenter import Segmenter, SegmenterConfig
from emostream.streaming.sources.base import AudioSource, SourceError, SourceInterrupted
from emostream.streaming.stats import PipelineStats

log = logging.getLogger(__name__)

REMOTE_STREAM_IDLE_S = 600.0  # a worker forgets a stream (counts, partial state) after this long without work
GONE_TOPIC_PREFIX = "gone."  # cluster mode: an utterance that will get no result (dropped, failed), on the bus only


class WorkQueue(Protocol):
    """Between segmenters and workers: ``DropOldestQueue`` in process, ``NatsWorkQueue`` on a bus."""

    capacity: int
    dropped: int
    high_water: int
    supports_speculation: bool

    def put(self, item: Utterance) -> Utterance | None: ...  # returns the item it dropped, if any

    def put_wait(self, item: Utterance) -> None: ...

    def offer(self, key: Any, item: Any) -> Any | None: ...

    def withdraw(self, key: Any, item: Any) -> bool: ...

    def get(self, timeout: float | None = None) -> Any: ...

    def task_done(self, item: Utterance, outcome: str) -> None: ...  # published | unusable | failed

    def stats(self) -> dict[str, Any]: ...

    def __len__(self) -> int: ...


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
    worker_id: str | None = None  # cluster mode: named in every result (with the delivery count)
    role: str = "listen"  # in status: listen, worker, gateway, edge

    def __post_init__(self) -> None:
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {self.max_pending}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.status_interval_s <= 0:
            raise ValueError(f"status interval must be positive, got {self.status_interval_s}")


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


@dataclass
class _Recognized:
    result: Any  # EmotionResult
    asr_context: str
    timings: dict[str, float]  # stage times (ms)
    started: float  # perf_counter when recognition began


@dataclass
class _EarlyJob:
    """Best-effort work on audio the segmenter handed out before a close."""

    kind: str  # "speculative" (an end candidate) or "partial" (progress)
    utterance: Utterance
    state: str = "pending"  # pending -> running -> done, or discarded
    outcome: _Recognized | None = None
    final: Utterance | None = None  # the close that arrived while running: the worker publishes it


class Pipeline:
    def __init__(self, recognizer, sources: Sequence[AudioSource], sinks: Sequence[Sink],
                 config: PipelineConfig | None = None, publisher=None, queue: WorkQueue | None = None,
                 open_ended: bool = False) -> None:
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
        self.queue: WorkQueue = queue if queue is not None else DropOldestQueue(self.config.max_pending)
        if hasattr(self.queue, "on_drop"):  # drops that happen later, away from put (a bus)
            self.queue.on_drop = self._dropped_later
        if hasattr(self.queue, "on_failed"):  # a bus gave up on an utterance whose workers all died
            self.queue.on_failed = self._failed_elsewhere
        self.segmenters = {s.stream_id: self._segmenter_for(s) for s in self.sources}
        self.stats = PipelineStats()
        for s in self.sources:
            self.stats.add_stream(s.stream_id, s.description)
        self._sources_lock = threading.Lock()
        self._source_threads: dict[str, threading.Thread] = {}
        self._running = False
        self._stop = threading.Event()
        self._sources_done = threading.Event()
        self._done = threading.Event()
        self._emit_lock = threading.RLock()
        self._jobs_lock = threading.Lock()
        self._speculations: dict[str, _EarlyJob] = {}
        # keyed by (session, stream id): a producer's seq restarts with each session
        self._closed_seq: dict[tuple, int] = {}  # last utterance the VAD closed per stream (its partials are over)
        self._partial_at: dict[tuple, tuple[int, int]] = {}  # (seq, samples) of the last partial per stream
        self._agreement: defaultdict[tuple, LocalAgreement] = defaultdict(LocalAgreement)
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

    def add_source(self, source: AudioSource) -> None:
        """A new stream (a network client): segmented and queued like the others from now on."""
        with self._sources_lock:
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
        with self._sources_lock:
            thread = self._source_threads.get(stream_id)
        if thread is not None:
            thread.join(wait_s)
        with self._sources_lock:
            self.sources = [s for s in self.sources if s.stream_id != stream_id]
            self.segmenters.pop(stream_id, None)
            self._source_threads.pop(stream_id, None)
            self.stats.remove_stream(stream_id)
        self._forget(stream_id)

    def _forget(self, stream_id: str) -> None:
        """Drop the per-(session, stream) partial bookkeeping of a stream that is over."""
        with self._emit_lock:
            for table in (self._closed_seq, self._partial_at, self._agreement):
                for key in [k for k in table if k[1] == stream_id]:
                    del table[key]

    def _start_source(self, source: AudioSource) -> None:
        t = threading.Thread(target=self._run_source, args=(source,), name=f"source-{source.stream_id}", daemon=True)
        self._source_threads[source.stream_id] = t
        t.start()

    def run(self) -> int:
        """Block until every source has ended (or stop() was called) and all work is published.
        Returns the number of sources that ended in error."""
        self._started = time.monotonic()
        n_workers = self.config.workers if self.recognizer is not None else 0
        workers = [threading.Thread(target=self._run_worker, name=f"worker-{i}", daemon=True)
                   for i in range(n_workers)]
        heartbeat = threading.Thread(target=self._run_heartbeat, name="heartbeat", daemon=True)
        with self._sources_lock:
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
                with self._sources_lock:
                    alive = [t for t in self._source_threads.values() if t.is_alive()]
                if not alive:
                    break
                alive[0].join(0.2)
            self._sources_done.set()
            for t in workers:
                while t.is_alive():
                    t.join(0.2)
            if hasattr(self.queue, "flush"):  # a bus: what the sources queued goes out before we stop
                self.queue.flush()
            if self.on_drained is not None:  # e.g. wait for results coming back from a bus
                self.on_drained()
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
    def _dropped_later(self, utterance: Utterance, reason: str) -> None:
        self.stats.bump(utterance.stream_id, "dropped")
        if self.recognizer is not None:  # a worker: whoever waits for this seq's result hears it will not come
            self._notify_gone(utterance, "dropped", reason)

    def _failed_elsewhere(self, utterance: Utterance, reason: str) -> None:
        self.stats.bump(utterance.stream_id, "failed")
        self._notify_gone(utterance, "failed", reason)

    def _notify_gone(self, utterance: Utterance, outcome: str, reason: str) -> None:
        self._emit(f"{GONE_TOPIC_PREFIX}{utterance.stream_id}", {
            "type": "gone", "outcome": outcome, "stream_id": utterance.stream_id, "seq": utterance.seq,
            "session": utterance.session, "reason": reason, "worker": self.config.worker_id})

    def _close_seq(self, utterance: Utterance) -> None:
        key = (utterance.session, utterance.stream_id)
        with self._emit_lock:  # from now on no partial of this seq is published, even if the final is dropped
            self._closed_seq[key] = max(utterance.seq, self._closed_seq.get(key, 0))

    def _enqueue(self, utterance: Utterance, live: bool = True) -> None:
        sid = utterance.stream_id
        self.stats.bump(sid, "utterances")
        self._close_seq(utterance)
        try:
            if self._adopt_speculation(utterance):
                return
        except Exception:  # never lose the final to a bug in the early path: recognize it again
            log.exception("speculative result for %s#%d not used", sid, utterance.seq)
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
            while True:
                try:
                    for chunk in source.chunks(self._stop):
                        for item in segmenter.feed_events(chunk):
                            if isinstance(item, Utterance):
                                self._enqueue(item, live)
                            elif live:  # a file read as fast as possible gains nothing from early work
                                self._early(item)
                    break
                except SourceInterrupted as exc:  # a vanished microphone: keep what it said, wait for it
                    if not self._wait_for_source(source, segmenter, exc, live):
                        break
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

    def _wait_for_source(self, source: AudioSource, segmenter: Segmenter, exc: SourceError, live: bool) -> bool:
        for utterance in segmenter.flush():  # the audio up to the loss is published
            self._enqueue(utterance, live)
        self._void_speculation(source.stream_id)
        source.count("interruptions")
        self.stats.set_state(source.stream_id, "retrying", str(exc))
        log.warning("%s; retrying until it is back (--exit-on-device-loss to stop instead)", exc)
        if not source.reopen(self._stop):
            return False
        self.stats.set_state(source.stream_id, "running")
        log.warning("%s is back", source.description)
        return True

    # --- early work: speculative finals and partials -----------------------------------------
    def _early(self, event: SpeechEvent) -> None:
        sid = event.stream_id
        if event.kind == "resumed":
            self._void_speculation(sid)
            return
        if event.kind == "end_candidate" and not self.queue.supports_speculation:
            return
        if len(self.queue):  # finals are waiting: no early work now
            if event.kind == "progress":
                self.stats.bump(sid, "partials_skipped")
            return
        job = _EarlyJob("speculative" if event.kind == "end_candidate" else "partial", event.utterance)
        if job.kind == "speculative":
            with self._jobs_lock:
                self._void_speculation_locked(sid)
                self._speculations[sid] = job
        replaced = self.queue.offer(sid, job)
        if replaced is not None and replaced.kind == "partial":
            self.stats.bump(sid, "partials_skipped")

    def _void_speculation(self, stream_id: str) -> None:
        with self._jobs_lock:
            self._void_speculation_locked(stream_id)

    def _void_speculation_locked(self, stream_id: str) -> None:
        job = self._speculations.pop(stream_id, None)
        if job is None:
            return
        if job.state == "pending":
            self.queue.withdraw(stream_id, job)
        elif job.state in ("running", "done"):
            self.stats.bump(stream_id, "speculation_discarded")
        job.state = "discarded"

    def _adopt_speculation(self, utterance: Utterance) -> bool:
        """The VAD closed: True when a speculation on this utterance publishes it (now or when done)."""
        with self._jobs_lock:
            job = self._speculations.get(utterance.stream_id)
            cand = job.utterance if job is not None else None
            same = (cand is not None and cand.seq == utterance.seq and cand.start_s == utterance.start_s
                    and cand.turn_fragments == utterance.turn_fragments and len(cand.samples) <= len(utterance.samples))
            if not same or job.state in ("pending", "discarded"):  # e.g. a turn that outgrew max_utterance_s
                self._void_speculation_locked(utterance.stream_id)
                return False
            del self._speculations[utterance.stream_id]
            if job.state == "running":
                job.final = utterance  # its worker publishes when done
                return True
            outcome = job.outcome
        if outcome is None:
            self.stats.bump(utterance.stream_id, "speculation_discarded")  # it failed: recognized again
            return False
        self._publish_final(utterance, outcome, speculated=True)
        return True

    def _run_early(self, job: _EarlyJob, sec_pool: ThreadPoolExecutor) -> None:
        sid = job.utterance.stream_id
        if job.kind == "partial" and job.utterance.seq <= self._closed_seq.get((job.utterance.session, sid), 0):
            self.stats.bump(sid, "partials_skipped")  # its utterance closed while it waited: the final is next
            return
        with self._jobs_lock:
            if job.state != "pending":
                return
            job.state = "running"
        try:
            outcome = self.recognize(job.utterance.samples, sec_pool, partial=job.kind == "partial")
        except Exception as exc:  # the final is recognized again on its own; a partial is skipped
            log.debug("early %s work on %s#%d failed: %s", job.kind, sid, job.utterance.seq, exc)
            outcome = None
        if job.kind == "partial":
            try:
                self._publish_partial(job.utterance, outcome)
            except Exception:
                self.stats.bump(sid, "partials_skipped")
                log.exception("partial %s#%d not published", sid, job.utterance.seq)
            return
        with self._jobs_lock:
            final = job.final
            if final is None:
                if job.state == "running":
                    job.outcome, job.state = outcome, "done"
                return
        if outcome is None:
            self.stats.bump(sid, "speculation_discarded")  # it failed: recognized again
            self._process_final(final, sec_pool)
            return
        try:
            self._publish_final(final, outcome, speculated=True)
        except Exception:
            self.stats.bump(sid, "failed")
            log.exception("utterance %s#%d failed", sid, final.seq)

    def _run_worker(self) -> None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sec") as sec_pool:
            while True:
                if self._sources_done.is_set() and self.open_ended and not self.sources:
                    return  # a bus consumer that was stopped: finish what it holds (done), take nothing new
                utterance = self.queue.get(timeout=0.1)
                if utterance is None:
                    if self._sources_done.is_set() and len(self.queue) == 0:
                        return
                    continue
                if isinstance(utterance, _EarlyJob):
                    self._run_early(utterance, sec_pool)
                elif isinstance(utterance, SpeechEvent):  # a partial snapshot from a bus
                    self._run_early(_EarlyJob("partial", utterance.utterance), sec_pool)
                else:
                    self._process_final(utterance, sec_pool)

    def _process_final(self, utterance: Utterance, sec_pool: ThreadPoolExecutor) -> None:
        if utterance.session is not None:  # from a bus: later partials of this utterance are stale here
            self._close_seq(utterance)
        outcome = "published"
        try:
            self.process(utterance, sec_pool)
        except AudioError as exc:
            outcome = "unusable"
            self.stats.bump(utterance.stream_id, "failed")
            log.warning("utterance %s#%d not classified: %s", utterance.stream_id, utterance.seq, exc)
            if utterance.session is not None:
                self._notify_gone(utterance, "failed", str(exc))
        except Exception as exc:
            outcome = "failed"
            last_try = self.queue.is_last_try(utterance) if hasattr(self.queue, "is_last_try") else True
            self.stats.bump(utterance.stream_id, "failed" if last_try else "retried")
            log.exception("utterance %s#%d failed%s", utterance.stream_id, utterance.seq,
                          "" if last_try else " (another worker will try it)")
            if last_try and utterance.session is not None:
                self._notify_gone(utterance, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            self.queue.task_done(utterance, outcome)

    def _run_heartbeat(self) -> None:
        # keeps beating while queued work drains after stop() (state "stopping")
        while not self._done.wait(self.config.status_interval_s):
            self._emit(STATUS_TOPIC, self.status_message("running"))

    # --- one utterance --------------------------------------------------------------------------
    def process(self, utterance: Utterance, sec_pool: ThreadPoolExecutor) -> dict[str, Any]:
        """Both branches at once, fusion, publish. Returns the published message."""
        return self._publish_final(utterance, self.recognize(utterance.samples, sec_pool))

    def recognize(self, wave, sec_pool: ThreadPoolExecutor, partial: bool = False) -> _Recognized | None:
        """SEC || (ASR -> text), then fusion. ``partial``: audio still being spoken; None when its
        short-window decode was not trusted (that partial is skipped)."""
        rec = self.recognizer
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
            transcript = rec.transcribe(wave, partial=partial)
            t_asr1 = time.perf_counter()
            if transcript is None:
                return None
            tec = rec.text(transcript.text)
            t_text = time.perf_counter()
        finally:  # wait for SEC even if ASR failed: it runs on this worker's pool
            sec, sec_span = sec_future.result()
        branches_end = max(t_text, sec_span[1])
        probs, valence, arousal = rec.fuse(sec, tec, transcript.confidence)
        t_fused = time.perf_counter()
        timings = {
            "sec": (sec_span[1] - sec_span[0]) * 1e3,
            "asr": (t_asr1 - t_asr0) * 1e3,
            "text": (t_text - t_asr1) * 1e3,
            "fusion": (t_fused - branches_end) * 1e3,
            "branches": (branches_end - t_start) * 1e3,
            "sec_asr_overlap": _overlap(sec_span, (t_asr0, t_asr1)) * 1e3,
        }
        return _Recognized(rec.result(probs, valence, arousal, transcript, {}, words_va=tec.va), transcript.context,
                           timings, t_start)

    def _publish_final(self, utterance: Utterance, done: _Recognized, speculated: bool = False) -> dict[str, Any]:
        timings = {"queue_wait": (done.started - utterance.closed_perf) * 1e3, **done.timings}
        if speculated:
            timings["head_start"] = (utterance.closed_perf - done.started) * 1e3
        with self._emit_lock:  # the final and the partial bookkeeping move together
            timings["vad_close_to_publish"] = (time.perf_counter() - utterance.closed_perf) * 1e3
            worker = None if self.config.worker_id is None else \
                {"id": self.config.worker_id, "delivery": utterance.delivery}
            message = emotion_message(utterance, done.result, timings, published_at=time.time(),
                                      asr_context=done.asr_context, speculated=speculated, worker=worker)
            self._emit(emotion_topic(utterance.stream_id), message)
        self.stats.bump(utterance.stream_id, "published")
        if speculated:
            self.stats.bump(utterance.stream_id, "speculated")
        self.stats.record(message["timings_ms"])
        return message

    def _publish_partial(self, so_far: Utterance, done: _Recognized | None) -> None:
        sid = so_far.stream_id
        key = (so_far.session, sid)
        with self._emit_lock:
            last = self._partial_at.get(key, (0, 0))
            if (done is None or so_far.seq <= self._closed_seq.get(key, 0)
                    or (so_far.seq, len(so_far.samples)) <= last):  # untrusted, after its final, or out of order
                self.stats.bump(sid, "partials_skipped")
                return
            self._partial_at[key] = (so_far.seq, len(so_far.samples))
            stable, unstable = self._agreement[key].update(so_far.seq, done.result.transcript)
            timings = {"audio_to_publish": (time.perf_counter() - so_far.closed_perf) * 1e3, **done.timings}
            self._emit(partial_topic(sid), partial_message(so_far, done.result, stable, unstable, timings,
                                                           published_at=time.time()))
        self.stats.bump(sid, "partials")

    def relay(self, topic: str, message: dict[str, Any]) -> None:
        """A result recognized elsewhere (edge mode: a worker on the bus) for one of our streams."""
        self._emit(topic, message)
        if message.get("type") == "emotion":
            self.stats.bump(message["stream_id"], "published")
            self.stats.record(message.get("timings_ms", {}))
        elif message.get("type") == "partial":
            self.stats.bump(message["stream_id"], "partials")

    def _emit(self, topic: str, message: dict[str, Any]) -> None:
        with self._emit_lock:  # keeps sinks seeing messages in one order
            for sink in self.sinks:
                try:
                    sink.emit(topic, message)
                except Exception as exc:  # a broken sink (full disk, closed terminal) must not stop the others
                    log.warning("%s could not take a message: %s", type(sink).__name__, exc)

    # --- status ---------------------------------------------------------------------------------
    status_extras: Any = None  # a callable adding role-specific fields (the gateway's connections)
    on_drained: Any = None  # called once the sources ended and the queue is empty, before sinks close

    def status_message(self, state: str) -> dict[str, Any]:
        with self._emit_lock:
            self._status_seq += 1
            seq = self._status_seq
        for sid in self.stats.prune_idle(REMOTE_STREAM_IDLE_S):  # streams a bus brought that went quiet
            self._forget(sid)
        streams = {}
        with self._sources_lock, self.stats.lock:
            sources = {s.stream_id: s for s in self.sources}
            for sid, st in self.stats.streams.items():
                segmenter, source = self.segmenters.get(sid), sources.get(sid)
                seg = segmenter.stats if segmenter is not None else {}  # None: a stream a bus brought
                streams[sid] = {"source": st.source, "state": st.state, "error": st.error, **st.counts,
                                "too_short": seg.get("too_short", 0), "forced_cuts": seg.get("forced_cuts", 0),
                                "turn_continuations": seg.get("turn_continuations", 0),
                                "source_counters": dict(source.counters) if source is not None else {}}
        if state == "running" and self._stop.is_set():
            state = "stopping"
        return {
            "schema": STATUS_SCHEMA_ID, "schema_version": SCHEMA_VERSION, "type": "status",
            "seq": seq, "state": state,
            "uptime_s": round(time.monotonic() - self._started, 3), "published_at": time.time(),
            "streams": streams,
            "role": self.config.role, **({"worker": self.config.worker_id} if self.config.worker_id else {}),
            "queue": self.queue.stats(),
            "publisher": self.publisher.stats() if self.publisher is not None else
            {"endpoint": None, "sent": 0, "send_failures": 0},
            "latency_ms": self.stats.latency_summary(),
            "sec_asr_overlap_share": self.stats.overlap_share(),
            **(self.status_extras() if self.status_extras is not None else {}),
        }
