"""Parts of the bench alone: the page benchmark's clock on real speech (which WAV frame the page sent
first, as it connects after the file started; end of speech -> painted per utterance) and the
stream steps."""

from __future__ import annotations

import numpy as np

from emostream.benchmarks.page import FRAME, PageRun, frame_lag, speech_end_to_shown


def _frame_rms(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // FRAME
    return np.sqrt(np.mean(audio[:n * FRAME].astype(np.float64).reshape(-1, FRAME) ** 2, axis=1))


def test_the_lost_lead_is_found_from_the_loudness_envelopes(dialogue):
    mic = np.concatenate([np.zeros(8000, np.float32), dialogue.audio])
    for lost in (0, 3, 21):
        sent = _frame_rms(mic[lost * FRAME:]) * 0.5  # the page's level may differ: correlation ignores it
        assert frame_lag(mic, sent) == lost


def test_each_utterance_is_timed_from_its_last_audible_frame_to_its_last_final_painted(dialogue):
    mic = np.concatenate([np.zeros(8000, np.float32), dialogue.audio])
    lag, n_frames = 4, len(mic) // FRAME
    sent_at = 1000.0 + 20.0 * np.arange(n_frames - lag)  # frame k of the page left at 1000 + 20 k ms
    starts = [8000 + int(a * 16000) for a, _ in dialogue.spans] + [len(mic)]
    ends = [8000 + int(b * 16000) for _, b in dialogue.spans]
    regions = [(starts[i], starts[i + 1], starts[i], ends[i]) for i in range(len(ends))]
    shown = []
    for i, end in enumerate(ends):  # each final 400 ms after its speech ended; the first cut in two
        departed = 1000.0 + 20.0 * ((end - 1) // FRAME - lag)
        close_s = (end - lag * FRAME) / 16000 + 0.3
        if i == 0:
            shown.append({"seq": 0, "end_s": close_s - 1.0, "shown_at": departed - 500.0})
        shown.append({"seq": i + 1, "end_s": close_s, "shown_at": departed + 400.0})
    run = PageRun(sent_at, np.ones(len(sent_at)), 0, shown, [], {}, {}, {})
    assert np.allclose(speech_end_to_shown(run, regions, lag), 400.0)


def test_stream_steps_double_then_add_eight():
    from emostream.benchmarks.streams import stream_steps

    assert stream_steps(1) == [1] and stream_steps(8) == [1, 2, 4, 8]
    assert stream_steps(32) == [1, 2, 4, 8, 16, 24, 32] and stream_steps(20) == [1, 2, 4, 8, 16]
