"""Early work on an utterance still open: partial results and speculative finals.

Taken by a worker after the finals that wait, in the same batch (see ``queues`` and
``Pipeline.run_batch``), so a final never waits behind early work; under load the partials' cadence
stretches (``_partial_due``), and no early work is scheduled while more finals wait than a batch
takes. When the segmenter announces an end candidate, the final recognition starts then; if the
VAD closes with no new speech its result is published at once (``speculated``), if speech resumes
it is thrown away. While an utterance is open, its audio so far is recognized every
``partial_interval_s`` and published on ``partial.<stream_id>`` with a LocalAgreement-2 stable
prefix. A stream's partials for an utterance are published in order and only until the VAD closes
it (so before its final, even one that is dropped or fails). Speculative finals need the close and
the models in one process, so they run only on a queue that ``supports_speculation``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emostream.protocol import partial_message, partial_topic
from emostream.streaming.audio import SAMPLE_RATE
from emostream.streaming.agreement import LocalAgreement
from emostream.streaming.frames import SpeechEvent, Utterance

if TYPE_CHECKING:
    from emostream.engine.recognizer import Recognition
    from emostream.streaming.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class EarlyJob:
    """Best-effort work on audio the segmenter handed out before a close."""

    kind: str  # "speculative" (an end candidate) or "partial" (progress)
    utterance: Utterance
    state: str = "pending"  # pending -> running -> done, or discarded
    outcome: Recognition | None = None
    final: Utterance | None = None  # the close that arrived while running: the worker publishes it


class EarlyWork:
    """The speculation state machine and the partials' bookkeeping of one pipeline. Its finals are
    published through the pipeline, under the pipeline's emit lock, so a partial never follows its
    final."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._speculations: dict[str, EarlyJob] = {}
        # keyed by (session, stream id): a producer's seq restarts with each session
        self._closed_seq: dict[tuple, int] = {}  # last utterance the VAD closed per stream (its partials are over)
        self._partial_at: dict[tuple, tuple[int, int]] = {}  # (seq, samples) of the last partial per stream
        self._offered_at: dict[tuple, tuple[int, int]] = {}  # (seq, samples) of the last partial scheduled
        self._agreement: defaultdict[tuple, LocalAgreement] = defaultdict(LocalAgreement)

    # --- events from the segmenter --------------------------------------------------------------
    def on_event(self, event: SpeechEvent) -> None:
        p, sid = self.pipeline, event.stream_id
        if event.kind == "resumed":
            self.void(sid)
            return
        if event.kind == "end_candidate" and not p.queue.supports_speculation:
            return
        if len(p.queue) >= p.batch_size:  # more finals wait than a batch takes: no early work now
            if event.kind == "progress":
                p.stats.bump(sid, "partials_stretched")
            return
        if event.kind == "progress" and not self._partial_due(event.utterance):
            p.stats.bump(sid, "partials_stretched")
            return
        job = EarlyJob("speculative" if event.kind == "end_candidate" else "partial", event.utterance)
        if job.kind == "speculative":
            with self._lock:
                self._void_locked(sid)
                self._speculations[sid] = job
        replaced = p.queue.offer(sid, job)
        if replaced is not None and replaced.kind == "partial":
            p.stats.bump(sid, "partials_skipped")

    def _partial_due(self, so_far: Utterance) -> bool:
        """The partial cadence stretches with the work waiting: the next partial of a stream is due
        after ``partial_interval_s * (1 + backlog / take)`` of new audio, ``take`` being how many
        items a worker's next take holds (``Pipeline.take_size``): so under load fewer partials are
        scheduled, rather than scheduled and then skipped."""
        p = self.pipeline
        interval = p.config.segmenter.partial_interval_s * (1.0 + p.queue.backlog() / p.take_size())
        key = (so_far.session, so_far.stream_id)
        seq, samples = self._offered_at.get(key, (0, 0))
        new_audio = len(so_far.samples) - (samples if seq == so_far.seq else 0)
        if new_audio < 0.9 * interval * SAMPLE_RATE:  # 0.9: the segmenter's own cadence always passes unloaded
            return False
        self._offered_at[key] = (so_far.seq, len(so_far.samples))
        return True

    def close_seq(self, utterance: Utterance) -> None:
        key = (utterance.session, utterance.stream_id)
        with self.pipeline.emit_lock:  # from now on no partial of this seq is published, even if the final is dropped
            self._closed_seq[key] = max(utterance.seq, self._closed_seq.get(key, 0))

    def void(self, stream_id: str) -> None:
        with self._lock:
            self._void_locked(stream_id)

    def _void_locked(self, stream_id: str) -> None:
        job = self._speculations.pop(stream_id, None)
        if job is None:
            return
        if job.state == "pending":
            self.pipeline.queue.withdraw(stream_id, job)
        elif job.state in ("running", "done"):
            self.pipeline.stats.bump(stream_id, "speculation_discarded")
        job.state = "discarded"

    def adopt(self, utterance: Utterance) -> bool:
        """The VAD closed: True when a speculation on this utterance publishes it (now or when done)."""
        with self._lock:
            job = self._speculations.get(utterance.stream_id)
            cand = job.utterance if job is not None else None
            same = (cand is not None and cand.seq == utterance.seq and cand.start_s == utterance.start_s
                    and cand.turn_fragments == utterance.turn_fragments and len(cand.samples) <= len(utterance.samples))
            if not same or job.state in ("pending", "discarded"):  # e.g. a turn that outgrew max_utterance_s
                self._void_locked(utterance.stream_id)
                return False
            del self._speculations[utterance.stream_id]
            if job.state == "running":
                job.final = utterance  # its worker publishes when done
                return True
            outcome = job.outcome
        if outcome is None:
            self.pipeline.stats.bump(utterance.stream_id, "speculation_discarded")  # it failed: recognized again
            return False
        self.pipeline.publish_final(utterance, outcome, speculated=True)
        return True

    def forget(self, stream_id: str) -> None:
        """Drop the per-(session, stream) partial bookkeeping of a stream that is over."""
        with self.pipeline.emit_lock:
            for table in (self._closed_seq, self._partial_at, self._offered_at, self._agreement):
                for key in [k for k in table if k[1] == stream_id]:
                    del table[key]

    # --- on a worker ----------------------------------------------------------------------------
    def start(self, job: EarlyJob) -> bool:
        """False when the job is no longer worth running (its utterance closed, or it was voided)."""
        p, sid = self.pipeline, job.utterance.stream_id
        if job.kind == "partial" and job.utterance.seq <= self._closed_seq.get((job.utterance.session, sid), 0):
            p.stats.bump(sid, "partials_skipped")  # its utterance closed while it waited: the final is next
            return False
        with self._lock:
            if job.state != "pending":
                return False
            job.state = "running"
        return True

    def finish(self, job: EarlyJob, outcome: Recognition | None, sec_pool: Executor) -> None:
        """Publish the partial, or keep (or publish) the speculative final. ``outcome`` None: the
        recognition failed or was not trusted."""
        p, sid = self.pipeline, job.utterance.stream_id
        if job.kind == "partial":
            try:
                self.publish_partial(job.utterance, outcome)
            except Exception:
                p.stats.bump(sid, "partials_skipped")
                log.exception("partial %s#%d not published", sid, job.utterance.seq)
            return
        with self._lock:
            final = job.final
            if final is None:
                if job.state == "running":
                    job.outcome, job.state = outcome, "done"
                return
        if outcome is None:
            p.stats.bump(sid, "speculation_discarded")  # it failed: recognized again
            p.process_final(final, sec_pool)
            return
        try:
            p.publish_final(final, outcome, speculated=True)
        except Exception:
            p.stats.bump(sid, "failed")
            log.exception("utterance %s#%d failed", sid, final.seq)

    def publish_partial(self, so_far: Utterance, done: Recognition | None) -> None:
        p, sid = self.pipeline, so_far.stream_id
        key = (so_far.session, sid)
        with p.emit_lock:
            last = self._partial_at.get(key, (0, 0))
            if (done is None or so_far.seq <= self._closed_seq.get(key, 0)
                    or (so_far.seq, len(so_far.samples)) <= last):  # untrusted, after its final, or out of order
                p.stats.bump(sid, "partials_skipped")
                return
            self._partial_at[key] = (so_far.seq, len(so_far.samples))
            stable, unstable = self._agreement[key].update(so_far.seq, done.result.transcript)
            timings = {"audio_to_publish": (time.perf_counter() - so_far.closed_perf) * 1e3, **done.timings_ms}
            p.emit(partial_topic(sid), partial_message(so_far, done.result, stable, unstable, timings,
                                                       published_at=time.time()))
        p.stats.bump(sid, "partials")
