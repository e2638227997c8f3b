"""What a deployment adds around the pipeline core, supplied when the pipeline is built.

In one process nothing is added (``PipelineHooks`` itself). ``emostream.cluster`` supplies the
bus's: a worker announces utterances that will get no result and forgets idle streams, a gateway
reports its connections in status, an edge waits for its results to come back from the workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emostream.streaming.frames import Utterance

if TYPE_CHECKING:
    from emostream.streaming.pipeline import Pipeline


class PipelineHooks:
    """The in-process default: every hook does nothing."""

    pipeline: Pipeline | None = None

    def attach(self, pipeline: Pipeline) -> None:
        """Called once, by the pipeline these hooks were given to."""
        self.pipeline = pipeline

    def gone(self, utterance: Utterance, outcome: str, reason: str) -> None:
        """``utterance`` will get no result here (``outcome``: dropped or failed)."""

    def status_fields(self) -> dict[str, Any]:
        """Fields added to every status message (called before the streams are read)."""
        return {}

    def drained(self) -> None:
        """The sources ended and the queue is empty; the sinks close after this returns."""
