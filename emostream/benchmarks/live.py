"""Utterances as ``listen`` meets them: the bench utterances, one after another with pauses, fed
through the segmenter at real-time pace (blocks delivered when a microphone would deliver them),
so speculation and partials count. Two paths on the same models and threads, interleaved:

- ``emostream``: the default path (real-length ASR, speculative finals, partials every 0.5 s);
- ``asr_full_context``: the path before streaming (30 s ASR window, no speculation, no partials).

Clocks: ``vad_close_to_publish`` starts when the VAD closes the utterance (as in status);
``speech_end_to_publish`` starts when the last audible sample of the spoken utterance arrived
(so it includes the end-silence wait); ``onset_to_first_partial`` starts at its first audible sample.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from emostream.benchmarks.runner import ratio, summarize
from emostream.benchmarks.utterances import BenchUtterance
from emostream.streaming.sources.base import AudioSource

RATE = 16000
# 2 s of silence lead: on a cold machine Chromium's fake microphone (the page section) was seen to
# play 1.6 s of its file before the page got the stream; speech must not start inside that
LEAD_S, PAUSE_S = 2.0, 1.5


class PacedAudio(AudioSource):
    """In-memory audio delivered block by block when each block has been 'heard' (like a microphone)."""

    kind = "microphone"

    def __init__(self, stream_id: str, audio: np.ndarray, block_ms: int = 20) -> None:
        super().__init__(stream_id, f"{len(audio) / RATE:.1f} s paced in real time")
        self.audio = audio
        self.block = RATE * block_ms // 1000
        self.t0: float | None = None  # perf_counter when sample 0 'happened'

    def _blocks(self, stop: threading.Event) -> Iterator[np.ndarray]:
        self.t0 = time.perf_counter()
        for start in range(0, len(self.audio), self.block):
            end = min(start + self.block, len(self.audio))
            wait = self.t0 + end / RATE - time.perf_counter()
            if wait > 0 and stop.wait(wait):
                return
            yield self.audio[start:end]

    def wall(self, sample: int) -> float:
        return self.t0 + sample / RATE


class _Timed:
    def __init__(self) -> None:
        self.messages: list[tuple[float, str, dict]] = []

    def emit(self, topic: str, message: dict) -> None:
        self.messages.append((time.perf_counter(), topic, message))

    def close(self) -> None:
        pass


def audible_span(samples: np.ndarray, floor_db: float = 35.0) -> tuple[int, int]:
    """First and last sample of the 10 ms frames within ``floor_db`` of the loudest frame."""
    n = len(samples) // 160 * 160
    rms = np.sqrt(np.mean(samples[:n].reshape(-1, 160).astype(np.float64) ** 2, axis=1)) + 1e-12
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > -floor_db)
    return int(loud[0] * 160), int((loud[-1] + 1) * 160)


def recording(utts: list[BenchUtterance]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """One recording; per utterance (region start, region end, audible start, audible end) in samples."""
    parts, regions, pos = [np.zeros(int(LEAD_S * RATE), np.float32)], [], int(LEAD_S * RATE)
    for u in utts:
        a, b = audible_span(u.samples)
        regions.append((pos, pos + len(u.samples) + int(PAUSE_S * RATE), pos + a, pos + b))
        parts += [u.samples.astype(np.float32), np.zeros(int(PAUSE_S * RATE), np.float32)]
        pos += len(u.samples) + int(PAUSE_S * RATE)
    return np.concatenate(parts), regions


def run_path(recognizer, utts: list[BenchUtterance], endpoint: str, segmenter, workers: int = 1) -> dict:
    from emostream.sinks.publisher import Publisher
    from emostream.streaming.pipeline import Pipeline, PipelineConfig

    audio, regions = recording(utts)
    source, sink = PacedAudio("bench", audio), _Timed()
    pipeline = Pipeline(recognizer, [source], [sink], PipelineConfig(segmenter=segmenter, workers=workers),
                        publisher=Publisher(endpoint))
    pipeline.run()
    finals = [(t, m) for t, topic, m in sink.messages if m["type"] == "emotion"]
    partials = [(t, m) for t, topic, m in sink.messages if m["type"] == "partial"]
    status = [m for _, _, m in sink.messages if m["type"] == "status"][-1]["streams"]["bench"]
    out = {"vad_close_to_publish": [], "speech_end_to_publish": [], "onset_to_first_partial": [],
           "partial_interval": [], "finals": len(finals), "utterances_cut": status["utterances"],
           "dropped": status["dropped"], "speculated": status["speculated"],
           "speculation_discarded": status["speculation_discarded"], "partials": status["partials"],
           "partials_skipped": status["partials_skipped"]}
    for t, m in finals:
        if m["utterance"]["duration_s"] <= 8.0:
            out["vad_close_to_publish"].append(m["timings_ms"]["vad_close_to_publish"])
    for start, end, onset, speech_end in regions:
        inside = lambda m: start <= m["utterance"]["end_s"] * RATE < end  # noqa: E731
        mine = [(t, m) for t, m in finals if inside(m)]
        if mine:  # the last final of the spoken utterance (a comma pause may have cut it in two)
            out["speech_end_to_publish"].append((mine[-1][0] - source.wall(speech_end)) * 1e3)
        said = [(t, m) for t, m in partials if inside(m)]
        if said and speech_end - onset > 1.5 * RATE:
            out["onset_to_first_partial"].append((said[0][0] - source.wall(onset)) * 1e3)
        for seq in {m["seq"] for _, m in said}:
            times = [t for t, m in said if m["seq"] == seq]
            out["partial_interval"] += list(np.diff(times) * 1e3)
    return out


def asr_paths(recognizer, utts: list[BenchUtterance], references: dict[str, str]) -> dict:
    """WER, short-window fall-backs and loops of each ASR path on the bench utterances with known words."""
    import jiwer

    from emostream.engine.training.metrics import wer_words
    from emostream.streaming.segmenter import trim_to_speech

    out = {}
    known = [u for u in utts if u.name in references]
    for context in ("real", "full"):
        asr = recognizer.asr.with_context(context)
        hyps, fell_back, loops = [], 0, 0
        for u in known:
            t = asr.transcribe(trim_to_speech(u.samples)[0])
            hyps.append(wer_words(t.text))
            fell_back += t.context == "real->full"
            loops += t.runaway
        out[context] = {"n": len(known), "wer": round(jiwer.wer([wer_words(references[u.name]) for u in known],
                                                                hyps), 4) if known else None,
                        "short_window_not_trusted_before_fallback": fell_back, "loops_dropped_not_published": loops}
    return out


def live_latency(recognizer, utts: list[BenchUtterance], endpoints, repeats: int, progress=None,
                 workers: int = 1) -> dict:
    """``workers``: as ``listen --concurrency``."""
    from emostream.streaming.segmenter import SegmenterConfig

    paths = {"emostream": (recognizer.with_asr_context("real"), SegmenterConfig()),
             "asr_full_context": (recognizer.with_asr_context("full"),
                                  SegmenterConfig(speculate_silence_ms=0, partial_interval_s=0.0))}
    runs: dict[str, list[dict]] = {k: [] for k in paths}
    for rep in range(repeats):
        for name, (rec, seg) in paths.items():
            runs[name].append(run_path(rec, utts, next(endpoints), seg, workers))
            if progress:
                progress(name, rep, runs[name][-1])
    merged = {name: {k: (sum((r[k] for r in rs), []) if isinstance(rs[0][k], list) else sum(r[k] for r in rs))
                     for k in rs[0]} for name, rs in runs.items()}
    close = {name: summarize(m["vad_close_to_publish"]) for name, m in merged.items()}
    em = merged["emostream"]
    return {
        "vad_close_to_publish_ms": close,
        "emostream_over_full_context": ratio(close["emostream"], close["asr_full_context"], ("median", "p95")),
        "speech_end_to_publish_ms": {name: summarize(m["speech_end_to_publish"]) for name, m in merged.items()},
        "speculative_finals": {"used": em["speculated"], "discarded": em["speculation_discarded"],
                               "finals": em["finals"]},
        "partials": {"onset_to_first_partial_ms": summarize(em["onset_to_first_partial"]),
                     "interval_ms": summarize(em["partial_interval"]),
                     "published": em["partials"], "skipped": em["partials_skipped"]},
        "counts": {name: {k: v for k, v in m.items() if not isinstance(v, list)} for name, m in merged.items()},
        "repeats": repeats, "pause_s": PAUSE_S,
        "note": "real-time pacing, one stream; vad_close_to_publish over finals of utterances <= 8 s",
        "raw_ms": {name: {k: v for k, v in m.items() if isinstance(v, list)} for name, m in merged.items()},
    }
