"""The small typed values that flow down the live data path: source -> segmenter -> pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostream.streaming.audio import SAMPLE_RATE


@dataclass(frozen=True)
class AudioChunk:
    """A run of 16 kHz mono float32 samples; ``start`` counts samples on the stream clock."""

    samples: np.ndarray
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech cut by the VAD.

    ``start_s``/``end_s`` are on the stream clock (seconds since the stream began, as counted in
    samples, so they do not drift with scheduling). ``closed_wall`` is the epoch time the VAD closed
    the utterance and ``closed_perf`` the same instant on ``time.perf_counter`` (for latency).
    When speech resumed right after a short pause, the utterance is the whole turn so far:
    ``turn_fragments`` > 1 and ``turn_first_seq`` is the seq of the turn's first fragment.
    """

    stream_id: str
    seq: int
    start_s: float
    end_s: float
    samples: np.ndarray
    closed_wall: float
    closed_perf: float
    forced_cut: bool = False
    turn_fragments: int = 1
    turn_first_seq: int | None = None
    session: str | None = None  # the producer's run (cluster mode): seq restarts at 1 with each session
    delivery: int = 1  # cluster mode: which attempt at recognizing it this is (JetStream redelivery)
    live: bool = True  # False: from a file read fast; never dropped for lag

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class SpeechEvent:
    """What the segmenter sees before an utterance closes, so work can start early.

    ``"end_candidate"``: trailing silence began; ``utterance`` is the utterance as it would close
    now (its seq is the one it will get), for a speculative final. ``"resumed"``: speech came back
    after an end candidate; that candidate is void. ``"progress"``: the open utterance so far, for a
    partial result. Events of one stream come in stream order, before the utterance they concern.
    """

    kind: str
    stream_id: str
    seq: int
    utterance: Utterance | None = None
