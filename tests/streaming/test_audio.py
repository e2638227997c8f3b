import numpy as np
import pytest

from emostream.streaming.audio import AudioError, load_audio, to_mono_16k, validate_waveform


def test_speech_file_loads_as_16k_mono(audio_dir, speech):
    x = load_audio(audio_dir / "happy.wav")
    assert x.dtype == np.float32 and x.ndim == 1
    assert x.size == speech["happy"].size


def test_stereo_44k_is_downmixed_and_resampled(audio_dir, speech):
    x = load_audio(audio_dir / "sad_stereo_44k.flac")
    assert x.ndim == 1
    assert abs(x.size - speech["sad"].size) <= 2
    # downmix of (s, 0.5 s) is 0.75 s: the resampled signal must match the original closely
    ref = 0.75 * speech["sad"][: x.size]
    assert np.corrcoef(x[: ref.size], ref)[0, 1] > 0.99


@pytest.mark.parametrize("name, message", [
    ("silence.wav", "silent"),
    ("empty.wav", "empty"),
    ("corrupt.wav", "cannot read audio"),
    ("nan.wav", "NaN"),
    ("too_long.wav", "at most 30 s"),
    ("does_not_exist.wav", "no such file"),
])
def test_bad_files_get_one_line_errors(audio_dir, name, message):
    with pytest.raises(AudioError) as err:
        load_audio(audio_dir / name)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_clipping_is_accepted_with_a_warning(audio_dir, caplog):
    x = load_audio(audio_dir / "clipped.wav")
    assert x.size > 0
    assert any("clipped" in r.message for r in caplog.records)


def test_validate_rejects_too_short():
    with pytest.raises(AudioError, match="at least"):
        validate_waveform(np.full(800, 0.1, np.float32))


def test_to_mono_rejects_bad_shapes():
    with pytest.raises(AudioError):
        to_mono_16k(np.zeros((2, 2, 2)), 16000)
    with pytest.raises(AudioError):
        to_mono_16k(np.zeros(10), 0)
