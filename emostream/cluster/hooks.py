"""The bus's additions to the pipeline core (``streaming.hooks``), one per role.

- a worker announces on ``gone.<stream>`` each utterance that will get no result from it (dropped
  late, failed for good), so whoever waits for that seq stops waiting, and forgets streams that
  went quiet (a worker runs for months, its streams come and go);
- an edge (``listen --nats``) hands the results its workers send back to its own sinks, and at the
  end waits for the ones still on their way.
"""

from __future__ import annotations

from typing import Any

from emostream.cluster.link import NatsLink
from emostream.cluster.relay import ResultRelay
from emostream.protocol import gone_message, gone_topic
from emostream.streaming.frames import Utterance
from emostream.streaming.hooks import PipelineHooks

IDLE_STREAM_S = 600.0  # a worker forgets a stream (counts, partial state) after this long without work


class WorkerHooks(PipelineHooks):
    def gone(self, utterance: Utterance, outcome: str, reason: str) -> None:
        if utterance.session is None:  # not from a bus: no one waits for it elsewhere
            return
        self.pipeline.emit(gone_topic(utterance.stream_id),
                           gone_message(utterance, outcome, reason, self.pipeline.config.worker_id))

    def status_fields(self) -> dict[str, Any]:
        for sid in self.pipeline.stats.prune_idle(IDLE_STREAM_S):  # streams the bus brought that went quiet
            self.pipeline.early.forget(sid)
        return {}


class EdgeHooks(PipelineHooks):
    """``listen --nats``: the pipeline segments and enqueues; the workers' results for its streams
    and session come back through a ``ResultRelay`` to its sinks (live view, lines, JSONL, ZeroMQ)."""

    def __init__(self, link: NatsLink, session: str, stream_ids: list[str], result_wait_s: float) -> None:
        self.link, self.session, self.stream_ids, self.result_wait_s = link, session, stream_ids, result_wait_s
        self.relay: ResultRelay | None = None

    def attach(self, pipeline) -> None:
        super().attach(pipeline)
        self.relay = ResultRelay(self.link, self.session, self.stream_ids, self.deliver)
        self.link.call(self.relay.start())

    def deliver(self, topic: str, message: dict[str, Any]) -> None:
        """A result recognized by a worker, for one of our streams."""
        p = self.pipeline
        p.emit(topic, message)
        if message.get("type") == "emotion":
            p.stats.bump(message["stream_id"], "published")
            p.stats.record(message.get("timings_ms", {}))
        elif message.get("type") == "partial":
            p.stats.bump(message["stream_id"], "partials")

    def drained(self) -> None:
        def expected() -> int:
            counts = [self.pipeline.stream_counts(sid) for sid in self.stream_ids]
            return sum(c.get("utterances", 0) - c.get("dropped", 0) for c in counts)

        self.relay.wait(expected, self.result_wait_s)
