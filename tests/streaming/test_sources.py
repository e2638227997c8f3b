"""Sources on real files and pipes: resampling, pacing, clean ends, clear errors."""

from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import pytest
import soxr

from emostream.streaming.resample import StreamResampler
from emostream.streaming.sources import FileSource, SourceError, StdinSource, resolve_input_device


def collect(source, stop=None):
    chunks = list(source.chunks(stop or threading.Event()))
    for a, b in zip(chunks, chunks[1:]):
        assert b.start == a.end, "chunks must tile the stream clock"
    return np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)


def test_streaming_resampler_matches_one_shot(speech):
    x48 = soxr.resample(speech["happy"], 16000, 48000).astype(np.float32)
    rs = StreamResampler(48000)
    streamed = np.concatenate([rs(x48[i:i + 961]) for i in range(0, len(x48), 961)] + [rs(x48[:0], last=True)])
    whole = soxr.resample(x48, 48000, 16000, quality="HQ")
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.abs(streamed[:n] - whole[:n]).max() < 1e-3


def test_file_source_resamples_and_downmixes(audio_dir, speech):
    out = collect(FileSource(audio_dir / "sad_stereo_44k.flac", "sad", realtime=False))
    assert abs(len(out) - len(speech["sad"])) <= 2
    n = min(len(out), len(speech["sad"]))
    ref = 0.75 * speech["sad"][:n]  # (L + 0.5 L) / 2
    assert np.corrcoef(out[:n], ref)[0, 1] > 0.99


def test_file_source_real_time_pacing_and_stop(audio_dir):
    src = FileSource(audio_dir / "silence.wav", "s", realtime=True)  # 2 s of audio
    stop = threading.Event()
    t0 = time.monotonic()
    timer = threading.Timer(0.6, stop.set)
    timer.start()
    out = collect(src, stop)
    elapsed = time.monotonic() - t0
    # paced like a microphone: by the time stop came, about 0.6 s of audio had been read, not all 2 s
    assert 0.3 * 16000 < len(out) < 1.2 * 16000, (len(out), elapsed)


@pytest.mark.parametrize("name, message", [("corrupt.wav", "cannot read audio file"), ("missing.wav", "no such file")])
def test_file_source_bad_files(audio_dir, name, message):
    with pytest.raises(SourceError, match=message):
        FileSource(audio_dir / name, "x")


def test_file_source_nan_samples_are_zeroed_and_counted(audio_dir):
    src = FileSource(audio_dir / "nan.wav", "n", realtime=False)
    out = collect(src)
    assert np.isfinite(out).all() and src.counters["nonfinite_blocks"] >= 1


def _pcm(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def test_stdin_stereo_48k_with_a_torn_last_frame(speech):
    x48 = soxr.resample(speech["happy"], 16000, 48000).astype(np.float32)
    stereo = np.stack([x48, x48], axis=1)
    data = _pcm(stereo) + b"\x01\x02\x03"  # stream cut mid-frame
    src = StdinSource("pipe", rate=48000, channels=2, stream=io.BytesIO(data))
    out = collect(src)
    assert abs(len(out) - len(speech["happy"])) <= 2
    n = min(len(out), len(speech["happy"]))
    assert np.corrcoef(out[:n], speech["happy"][:n])[0, 1] > 0.99
    assert src.counters["partial_frame_bytes"] == 3


def test_stdin_from_a_real_pipe_ends_when_the_writer_closes(speech):
    r, w = os.pipe()
    data = _pcm(speech["sad"])

    def writer():
        with os.fdopen(w, "wb") as f:
            for i in range(0, len(data), 4000):
                f.write(data[i:i + 4000])
                f.flush()

    t = threading.Thread(target=writer)
    t.start()
    with os.fdopen(r, "rb") as f:
        out = collect(StdinSource("pipe", rate=16000, stream=f))
    t.join()
    assert len(out) == len(speech["sad"])


def test_stdin_stop_while_the_pipe_is_idle_does_not_hang():
    r, w = os.pipe()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with os.fdopen(r, "rb") as f:
        out = collect(StdinSource("pipe", rate=16000, stream=f), stop)
    os.close(w)
    assert len(out) == 0


@pytest.mark.parametrize("rate", [0, 100, 10_000_000])
def test_unsupported_stdin_rate(rate):
    with pytest.raises(SourceError, match="unsupported sample rate"):
        StdinSource("pipe", rate=rate, stream=io.BytesIO(b""))


def test_unknown_input_device_lists_what_exists():
    try:
        resolve_input_device(None)
    except SourceError as exc:  # no PortAudio devices at all on this machine: still a clear error
        assert "no audio input devices" in str(exc) or "PortAudio" in str(exc)
        return
    with pytest.raises(SourceError, match="no input device matches 'no-such-microphone'; inputs are"):
        resolve_input_device("no-such-microphone")
    with pytest.raises(SourceError, match="no input device with index 9999"):
        resolve_input_device(9999)
