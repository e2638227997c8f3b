"""Cut a 16 kHz stream into utterances with webrtcvad.

Idle: the last ``pre_roll_ms`` of frames sit in a ring. An utterance opens when at least
``start_ratio`` of the frames in the last ``start_ms`` are voiced; the ring becomes its head, so
onsets are not clipped. It closes after ``end_silence_ms`` of unvoiced frames (the trailing
silence stays: ASR likes a little tail), or is force-cut at ``max_utterance_s`` and a new one
continues straight on. Utterances with less than ``min_speech_ms`` of voiced frames are dropped
and counted. Which frames are voiced is ``streaming.vad``'s decision (webrtcvad gated by an
absolute and a noise-floor-relative level), and ``speech_span`` applies this same segmenter to
a whole file, so ``classify``, ``listen`` and training agree on where the speech is.

Turns: people pause inside a sentence ("Kids are talking ... by the door"), and a 300 ms end
silence cuts there. When speech resumes within ``turn_gap_ms`` of a close, the next utterance is
the *turn so far* (from the first fragment's start, the pause included), so its result judges the
whole sentence rather than a fragment, while the first fragment was still published without
waiting. ``Utterance.turn_fragments`` says how many fragments it covers.

Early work (``feed_events``): after ``speculate_silence_ms`` of trailing silence the segmenter
announces an end candidate (the utterance as it would close now), so the final recognition can run
during the rest of ``end_silence_ms``; speech resuming voids it. With ``partial_interval_s`` it also
hands out the open utterance so far every that many seconds of new audio while speech goes on.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from emostream.streaming.audio import SAMPLE_RATE
from emostream.streaming.frames import AudioChunk, SpeechEvent, Utterance
from emostream.streaming.vad import VADConfig, VoiceActivity


@dataclass(frozen=True)
class SegmenterConfig:
    frame_ms: int = 30
    aggressiveness: int = 2
    pre_roll_ms: int = 300
    start_ms: int = 150
    start_ratio: float = 0.8
    end_silence_ms: int = 300
    min_speech_ms: int = 200
    max_utterance_s: float = 15.0
    energy_floor_dbfs: float = -65.0
    noise_margin_db: float = 1.5
    turn_gap_ms: int = 400  # speech resuming this soon after a close continues the turn (0: never)
    speculate_silence_ms: int = 90  # trailing silence that announces an end candidate (0, or >= end_silence_ms: never)
    partial_interval_s: float = 0.5  # open utterance handed out every this much new audio (0: never)

    def __post_init__(self) -> None:
        _ = self.vad  # VADConfig validates frame_ms, aggressiveness and the level gates
        if not 0 < self.start_ratio <= 1:
            raise ValueError(f"start_ratio must be in (0, 1], got {self.start_ratio}")
        if self.end_silence_ms < self.frame_ms:
            raise ValueError(f"end_silence_ms must be at least one frame ({self.frame_ms} ms), got {self.end_silence_ms}")
        if self.turn_gap_ms < 0:
            raise ValueError(f"turn_gap_ms must be non-negative, got {self.turn_gap_ms}")
        if self.speculate_silence_ms < 0 or self.partial_interval_s < 0:
            raise ValueError("speculate_silence_ms and partial_interval_s must be non-negative")
        if self.min_speech_ms < 0:
            raise ValueError(f"min_speech_ms must be non-negative, got {self.min_speech_ms}")
        if self.start_ms < self.frame_ms or self.pre_roll_ms < 0:
            raise ValueError("start_ms must be at least one frame and pre_roll_ms non-negative")
        if not 0.5 <= self.max_utterance_s <= 30:
            raise ValueError(f"max_utterance_s must be within 0.5-30 s (the models take at most 30 s), "
                             f"got {self.max_utterance_s}")

    @property
    def vad(self) -> VADConfig:
        return VADConfig(self.frame_ms, self.aggressiveness, self.energy_floor_dbfs, self.noise_margin_db)

    @property
    def frame_samples(self) -> int:
        return self.vad.frame_samples


class Segmenter:
    """Feed chunks in any sizes; get finished utterances back. One instance per stream."""

    def __init__(self, stream_id: str, config: SegmenterConfig | None = None, session: str | None = None) -> None:
        self.session = session  # stamped on every utterance (cluster mode: seq restarts with each session)
        self.stream_id = stream_id
        self.config = config or SegmenterConfig()
        c = self.config
        self._is_voiced = VoiceActivity(c.vad)
        self._n = c.frame_samples
        self._start_frames = max(1, c.start_ms // c.frame_ms)
        self._ring: deque[tuple[np.ndarray, bool]] = deque(
            maxlen=max(self._start_frames, (c.pre_roll_ms + c.start_ms) // c.frame_ms))
        self._end_frames = max(1, c.end_silence_ms // c.frame_ms)
        self._max_frames = int(c.max_utterance_s * 1000 // c.frame_ms)
        self._pending = np.zeros(0, np.float32)
        self._pos = 0  # stream-clock sample index of the next frame
        self._active: list[np.ndarray] | None = None
        self._active_start = 0
        self._voiced = 0
        self._silence_run = 0
        self._gap_frames = c.turn_gap_ms // c.frame_ms
        self._turn: list[np.ndarray] = []  # every frame since the open turn's start
        self._turn_start = 0
        self._turn_fragments = 0  # 0: no open turn
        self._turn_first_seq = 0
        self._since_close = 0
        spec = c.speculate_silence_ms
        self._spec_frames = max(1, spec // c.frame_ms) if 0 < spec < c.end_silence_ms else 0
        self._candidate_out = False  # an end candidate was announced and not yet voided or closed
        self._partial_samples = int(c.partial_interval_s * SAMPLE_RATE)
        self._last_progress = 0  # samples of the open utterance when it was last handed out
        self.seq = 0
        self.stats = {"utterances": 0, "too_short": 0, "forced_cuts": 0, "turn_continuations": 0}

    @property
    def in_speech(self) -> bool:
        return self._active is not None

    def feed(self, chunk: AudioChunk | np.ndarray) -> list[Utterance]:
        return self._feed(chunk, early=False)  # type: ignore[return-value]

    def feed_events(self, chunk: AudioChunk | np.ndarray) -> list[Utterance | SpeechEvent]:
        """Closed utterances and the early events (end candidates, resumptions, progress), in order."""
        return self._feed(chunk, early=True)

    def _feed(self, chunk: AudioChunk | np.ndarray, early: bool) -> list[Utterance | SpeechEvent]:
        samples = chunk.samples if isinstance(chunk, AudioChunk) else np.asarray(chunk, np.float32)
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        out: list[Utterance | SpeechEvent] = []
        whole = len(buf) - len(buf) % self._n
        for i in range(0, whole, self._n):
            out.extend(self._step(buf[i:i + self._n], early))
        self._pending = np.array(buf[whole:], dtype=np.float32)
        return out

    def flush(self) -> list[Utterance]:
        """End of stream: close the utterance in progress (the partial last frame is kept)."""
        if self._active is None:
            return []
        if self._pending.size:
            self._active.append(self._pending)
            if self._turn_fragments:
                self._turn.append(self._pending)
            self._pos += self._pending.size
            self._pending = np.zeros(0, np.float32)
        self._candidate_out = False
        utt = self._close(forced=False)
        self._end_turn()
        return [utt] if utt is not None else []

    def _end_turn(self) -> None:
        self._turn, self._turn_fragments = [], 0

    def _step(self, frame: np.ndarray, early: bool) -> list[Utterance | SpeechEvent]:
        voiced = self._is_voiced(frame)
        frame_start = self._pos
        self._pos += self._n
        if self._turn_fragments:
            self._turn.append(frame)
        if self._active is None:
            self._ring.append((frame, voiced))
            self._since_close += 1
            if self._turn_fragments and self._since_close > self._gap_frames + self._start_frames:
                self._end_turn()  # the pause was long enough: the next speech starts a new turn
            recent = list(self._ring)[-self._start_frames:]
            if len(recent) == self._start_frames and sum(v for _, v in recent) >= self.config.start_ratio * len(recent):
                self._active = [f for f, _ in self._ring]
                self._active_start = frame_start + self._n - sum(len(f) for f in self._active)
                self._voiced = sum(v for _, v in self._ring)
                self._silence_run = 0
                self._ring.clear()
                self._last_progress = 0
                if not self._turn_fragments:
                    self._turn, self._turn_start = list(self._active), self._active_start
            return []
        self._active.append(frame)
        events: list[Utterance | SpeechEvent] = []
        if voiced:
            self._voiced += 1
            self._silence_run = 0
            if self._candidate_out:
                self._candidate_out = False
                events.append(SpeechEvent("resumed", self.stream_id, self.seq + 1))
        else:
            self._silence_run += 1
        if self._silence_run >= self._end_frames:
            self._candidate_out = False
            utt = self._close(forced=False)
            return events + ([utt] if utt is not None else [])
        if len(self._active) >= self._max_frames:
            self._candidate_out = False
            utt = self._close(forced=True)
            self._active, self._active_start, self._voiced, self._silence_run = [], self._pos, 0, 0
            self._turn, self._turn_start, self._turn_fragments = [], self._pos, 0  # a cut turn starts afresh
            self._last_progress = 0
            return events + ([utt] if utt is not None else [])
        if not early:
            return events
        kept = self._voiced * self.config.frame_ms >= self.config.min_speech_ms  # would survive a close now
        if kept and self._spec_frames and self._silence_run == self._spec_frames:
            self._candidate_out = True
            events.append(SpeechEvent("end_candidate", self.stream_id, self.seq + 1, self._assemble(False)))
        n_active = len(self._active) * self._n
        if (kept and self._partial_samples and voiced and n_active - self._last_progress >= self._partial_samples):
            self._last_progress = n_active
            events.append(SpeechEvent("progress", self.stream_id, self.seq + 1, self._assemble(False)))
        return events

    def _continues_turn(self, forced: bool) -> bool:
        return bool(self._turn_fragments and not forced and self._gap_frames
                    and sum(len(f) for f in self._turn) <= self.config.max_utterance_s * SAMPLE_RATE)

    def _assemble(self, forced: bool) -> Utterance:
        """The utterance a close now would give (the turn so far when it continues one); no state changes."""
        seq = self.seq + 1
        frames, start, fragments, first_seq = self._active, self._active_start, 1, seq
        if self._continues_turn(forced):
            frames, start = self._turn, self._turn_start  # the turn so far, pauses included
            fragments, first_seq = self._turn_fragments + 1, self._turn_first_seq
        samples = np.concatenate(frames).astype(np.float32)
        return Utterance(stream_id=self.stream_id, seq=seq, start_s=start / SAMPLE_RATE,
                         end_s=(start + len(samples)) / SAMPLE_RATE, samples=samples,
                         closed_wall=time.time(), closed_perf=time.perf_counter(), forced_cut=forced,
                         turn_fragments=fragments, turn_first_seq=first_seq, session=self.session)

    def _close(self, forced: bool) -> Utterance | None:
        frames, start, voiced = self._active or [], self._active_start, self._voiced
        self._voiced = 0
        self._silence_run = 0
        self._since_close = 0
        if not frames:  # the stream ended right after a forced cut
            self._active = None
            return None
        if voiced * self.config.frame_ms < self.config.min_speech_ms:
            self._active = None
            self.stats["too_short"] += 1
            return None
        continues = self._continues_turn(forced)
        utt = self._assemble(forced)
        self._active = None
        self.seq += 1
        if continues:
            self.stats["turn_continuations"] += 1
        elif self._gap_frames:
            self._turn, self._turn_start = list(frames), start  # this fragment opens a turn
        self._turn_fragments, self._turn_first_seq = utt.turn_fragments, utt.turn_first_seq
        if not self._gap_frames:
            self._end_turn()
        self.stats["utterances"] += 1
        self.stats["forced_cuts"] += int(forced)
        return utt


def segment_all(waveform: np.ndarray, config: SegmenterConfig | None = None) -> list[Utterance]:
    """Every utterance ``listen`` would publish for this recording, in order."""
    segmenter = Segmenter("recording", config)
    return segmenter.feed(np.asarray(waveform, np.float32)) + segmenter.flush()


def span_of(utterances: list[Utterance]) -> tuple[int, int] | None:
    """Sample range [start, end) from the first utterance's start to the last one's end."""
    if not utterances:
        return None
    return round(utterances[0].start_s * SAMPLE_RATE), round(utterances[-1].end_s * SAMPLE_RATE)


def speech_span(waveform: np.ndarray, config: SegmenterConfig | None = None) -> tuple[int, int] | None:
    """Where ``listen`` would find speech in this audio (pre-roll and end silence included), as one
    sample range; None when it finds no speech."""
    return span_of(segment_all(waveform, config))


def trim_to_speech(waveform: np.ndarray, config: SegmenterConfig | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """The speech part of a one-utterance recording and its sample span (the whole clip when the VAD
    finds no speech: the models then decide, e.g. silence -> empty transcript)."""
    span = speech_span(waveform, config) or (0, len(waveform))
    return waveform[span[0]:span[1]], span
