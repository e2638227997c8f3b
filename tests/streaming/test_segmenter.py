"""The webrtcvad segmenter on real speech, silence, noise and clipping."""

from __future__ import annotations

import numpy as np
import pytest

from emostream.streaming.frames import AudioChunk
from emostream.streaming.segmenter import Segmenter, SegmenterConfig


def segment(audio: np.ndarray, config: SegmenterConfig | None = None, chunk: int = 333):
    seg = Segmenter("t", config)
    out, pos = [], 0
    for i in range(0, len(audio), chunk):
        block = audio[i:i + chunk]
        out += seg.feed(AudioChunk(block, pos))
        pos += len(block)
    return out + seg.flush(), seg


def test_one_utterance_per_sentence_with_onsets_kept(dialogue):
    utts, seg = segment(dialogue.audio)
    assert [u.seq for u in utts] == list(range(1, len(dialogue.spans) + 1))
    for u, (start, end) in zip(utts, dialogue.spans):
        assert u.start_s <= start, "pre-roll must keep the onset"
        assert u.start_s >= start - 0.6
        assert end - 0.05 <= u.end_s <= end + 0.6  # closes after the end-of-speech silence
        assert u.samples.dtype == np.float32 and abs(u.duration_s - (u.end_s - u.start_s)) < 1e-6
        assert not u.forced_cut
    assert seg.stats == {"utterances": len(dialogue.spans), "too_short": 0, "forced_cuts": 0, "turn_continuations": 0}


def test_chunk_size_does_not_change_the_cuts(dialogue):
    a, _ = segment(dialogue.audio, chunk=160)
    b, _ = segment(dialogue.audio, chunk=len(dialogue.audio))
    assert [(u.start_s, u.end_s) for u in a] == [(u.start_s, u.end_s) for u in b]
    assert all(np.array_equal(x.samples, y.samples) for x, y in zip(a, b))


def test_longer_end_silence_merges_sentences(dialogue):
    utts, _ = segment(dialogue.audio, SegmenterConfig(end_silence_ms=1500))
    assert len(utts) == 1


@pytest.mark.parametrize("level", [0.0, 0.002, 0.01])
def test_silence_and_faint_noise_give_nothing(level):
    rng = np.random.default_rng(1)
    utts, seg = segment((level * rng.standard_normal(16000 * 4)).astype(np.float32))
    assert utts == [] and seg.stats["utterances"] == 0


def test_clipped_speech_is_still_segmented(dialogue):
    clipped = np.clip(dialogue.audio * 10, -1, 1).astype(np.float32)
    utts, _ = segment(clipped)
    assert len(utts) == len(dialogue.spans)


def test_max_length_forces_cuts_and_keeps_every_sample(dialogue):
    speech = np.concatenate([dialogue.audio[int(s * 16000):int(e * 16000)] for s, e in dialogue.spans])
    cfg = SegmenterConfig(max_utterance_s=1.5, end_silence_ms=2000)
    utts, seg = segment(speech, cfg)
    assert len(utts) >= 3 and seg.stats["forced_cuts"] >= 2
    assert all(u.duration_s <= 1.5 + 1e-6 for u in utts)
    assert any(u.forced_cut for u in utts)
    for a, b in zip(utts, utts[1:]):
        if a.forced_cut:
            assert b.start_s == pytest.approx(a.end_s)  # the next one continues without a gap


def test_short_bursts_are_dropped_and_counted(speech):
    from emostream.engine.training.speech_synth import Voice, speak

    word = speak("Hi.", Voice("en-us", 200, 50))
    audio = np.concatenate([np.zeros(8000, np.float32), word, np.zeros(16000, np.float32)])
    assert len(segment(audio)[0]) == 1  # kept with the default minimum
    utts, seg = segment(audio, SegmenterConfig(min_speech_ms=900))
    assert utts == [] and seg.stats["too_short"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"frame_ms": 25}, "frame_ms"), ({"aggressiveness": 4}, "aggressiveness"),
    ({"max_utterance_s": 60}, "max_utterance_s"), ({"end_silence_ms": 5}, "end_silence_ms"),
    ({"min_speech_ms": -1}, "min_speech_ms")])
def test_bad_configuration_is_refused_with_the_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SegmenterConfig(**kwargs)


def test_stream_ending_right_after_a_forced_cut_adds_nothing(dialogue):
    start, end = dialogue.spans[0]
    speech = dialogue.audio[int(start * 16000): int(start * 16000) + 16000 * 3 // 2 * 2]  # exactly 2 x 1.5 s
    utts, seg = segment(speech, SegmenterConfig(max_utterance_s=1.5, end_silence_ms=2000, start_ms=30,
                                                pre_roll_ms=0, min_speech_ms=0), chunk=len(speech))
    assert all(u.samples.size for u in utts)
    assert seg.stats["too_short"] == 0


def test_steady_noise_floor_is_not_speech():
    """Loud steady noise (a fan at -25 dBFS) must not open utterances: speech sits above the noise floor."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(2)
    fan = lfilter([1.0], [1, -0.9], rng.standard_normal(16000 * 6)).astype(np.float32)
    fan *= 10 ** (-25 / 20) / np.sqrt(np.mean(fan**2))
    utts, _ = segment(fan)
    assert utts == []


def test_speech_span_matches_the_segmenter_and_survives_noise(dialogue):
    from emostream.streaming.segmenter import speech_span, trim_to_speech

    utts, _ = segment(dialogue.audio)
    span = speech_span(dialogue.audio)
    assert span == (round(utts[0].start_s * 16000), round(utts[-1].end_s * 16000))
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(dialogue.audio)).astype(np.float32)
    noise *= np.sqrt(np.mean(dialogue.audio**2) / np.mean(noise**2)) / 10 ** (10 / 20)  # 10 dB SNR
    noisy_span = speech_span(dialogue.audio + noise)
    assert noisy_span is not None
    assert abs(noisy_span[0] - span[0]) < 0.4 * 16000 and abs(noisy_span[1] - span[1]) < 0.6 * 16000
    trimmed, used = trim_to_speech(np.zeros(16000, np.float32))
    assert used == (0, 16000) and len(trimmed) == 16000  # no speech: the whole clip, the models decide


def test_a_sentence_cut_at_a_short_pause_is_judged_as_one_turn(speech):
    """'Kids are talking ... by the door': the second utterance is the whole turn, pause included."""
    from emostream.engine.training.speech_synth import Voice, speak

    voice = Voice("en-us", 160, 50)
    first, second = speak("Kids are talking", voice), speak("by the door.", voice)
    trim = lambda x: x[np.flatnonzero(np.abs(x) > 1e-3)[0]:np.flatnonzero(np.abs(x) > 1e-3)[-1]]  # noqa: E731
    pause = np.zeros(int(0.5 * 16000), np.float32)
    lead = np.zeros(8000, np.float32)
    audio = np.concatenate([lead, trim(first), pause, trim(second), np.zeros(16000, np.float32)])

    utts, seg = segment(audio)
    assert [u.turn_fragments for u in utts] == [1, 2]
    assert utts[1].turn_first_seq == 1 and utts[1].seq == 2
    assert utts[1].start_s == utts[0].start_s  # the turn so far, from the first fragment's start
    assert utts[1].end_s > utts[0].end_s + 0.5
    start = int(utts[0].start_s * 16000)
    np.testing.assert_array_equal(utts[1].samples, audio[start:start + len(utts[1].samples)])
    assert seg.stats["turn_continuations"] == 1

    alone, _ = segment(audio, SegmenterConfig(turn_gap_ms=0))
    assert [u.turn_fragments for u in alone] == [1, 1] and alone[1].start_s >= alone[0].end_s

    apart = np.concatenate([lead, trim(first), np.zeros(int(1.5 * 16000), np.float32), trim(second), lead])
    far, _ = segment(apart)
    assert [u.turn_fragments for u in far] == [1, 1], "a long pause starts a new turn"


def events(audio: np.ndarray, config: SegmenterConfig, chunk: int = 480):
    seg = Segmenter("t", config)
    out = []
    for i in range(0, len(audio), chunk):
        out += seg.feed_events(audio[i:i + chunk])
    return out + seg.flush()


def test_end_candidates_precede_each_close_and_early_events_change_no_cut(dialogue):
    from emostream.streaming.frames import SpeechEvent, Utterance

    cfg = SegmenterConfig(speculate_silence_ms=90, partial_interval_s=0.5)
    got = events(dialogue.audio, cfg)
    finals = [u for u in got if isinstance(u, Utterance)]
    plain, _ = segment(dialogue.audio, SegmenterConfig(speculate_silence_ms=0))
    assert [(u.start_s, u.end_s) for u in finals] == [(u.start_s, u.end_s) for u in plain]
    for final in finals:
        before = got[:got.index(final)]
        last = [e for e in before if isinstance(e, SpeechEvent) and e.seq == final.seq and e.kind != "progress"][-1]
        assert last.kind == "end_candidate", "the close follows a candidate that speech did not void"
        cand = last.utterance
        assert cand.seq == final.seq and cand.start_s == final.start_s
        assert final.end_s - cand.end_s == pytest.approx((cfg.end_silence_ms - cfg.speculate_silence_ms) / 1000)
        np.testing.assert_array_equal(cand.samples, final.samples[:len(cand.samples)])
        progress = [e.utterance for e in before if isinstance(e, SpeechEvent) and e.kind == "progress" and e.seq == final.seq]
        assert progress, "a sentence longer than the interval is handed out while it is spoken"
        lengths = [len(p.samples) for p in progress]
        assert lengths == sorted(lengths) and lengths[0] >= 0.5 * 16000
        assert np.all(np.diff(lengths) >= 0.5 * 16000)
        np.testing.assert_array_equal(progress[-1].samples, final.samples[:lengths[-1]])


def test_speech_resuming_after_a_short_pause_voids_the_candidate(speech):
    from emostream.streaming.frames import SpeechEvent, Utterance

    pause = np.zeros(int(0.2 * 16000), np.float32)  # longer than the 90 ms candidate, shorter than the 300 ms close
    audio = np.concatenate([np.zeros(8000, np.float32), speech["happy"], pause, speech["happy"], np.zeros(16000, np.float32)])
    got = events(audio, SegmenterConfig(speculate_silence_ms=90, end_silence_ms=300))
    kinds = [e.kind if isinstance(e, SpeechEvent) else "final" for e in got]
    assert "resumed" in kinds
    i = kinds.index("resumed")
    assert kinds[i - 1] == "end_candidate" and got[i].seq == got[i - 1].seq
    assert kinds[-2:] == ["end_candidate", "final"]
    voided = got[i - 1].utterance
    final = next(e for e in got[i:] if isinstance(e, Utterance))
    assert final.seq == voided.seq and final.end_s > voided.end_s + 1.0, "the utterance went on past the pause"
    plain, _ = segment(audio, SegmenterConfig(speculate_silence_ms=0, end_silence_ms=300))
    assert [(u.start_s, u.end_s) for u in got if isinstance(u, Utterance)] == [(u.start_s, u.end_s) for u in plain]
