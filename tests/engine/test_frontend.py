"""The torch front end and the Whisper encoder against their references, on real speech."""

import ctranslate2
import numpy as np
import pytest
import torch
from faster_whisper.feature_extractor import FeatureExtractor

from emostream.engine.asr import bundled_asr_dir
from emostream.engine.ct2_weights import CT2FormatError, read_ct2_variables, write_ct2_variables
from emostream.engine.logmel import LogMel
from emostream.engine.whisper_encoder import WhisperEncoderStack


@pytest.fixture(scope="module")
def encoder():
    return WhisperEncoderStack.from_ct2(bundled_asr_dir())


def test_logmel_matches_faster_whisper(speech):
    for wave in speech.values():
        ref = FeatureExtractor()(wave)
        ours = LogMel()(torch.from_numpy(wave)[None])[0].numpy()
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_encoder_matches_ctranslate2_on_short_clip(encoder, speech):
    """Our torch encoder, driven on the real clip length, equals CTranslate2's own encode."""
    mel = FeatureExtractor()(speech["happy"])
    ct2 = ctranslate2.models.Whisper(str(bundled_asr_dir()), device="cpu", compute_type="float32")
    ref = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))))
    with torch.no_grad():
        ours = encoder(torch.from_numpy(mel)[None])[-1].numpy()
    assert ours.shape == ref.shape == (1, (mel.shape[1] + 1) // 2, 384)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_encoder_returns_every_layer(encoder, speech):
    with torch.no_grad():
        states = encoder(LogMel()(torch.from_numpy(speech["sad"])[None]))
    assert states.shape[0] == encoder.num_states == 5


def test_ct2_reader_rejects_other_files(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x09\x00\x00\x00junk")
    with pytest.raises(CT2FormatError):
        read_ct2_variables(bad)


def test_encoder_subset_written_and_read_back_builds_the_same_encoder(encoder, tmp_path):
    """The encoder alone (a fifth of tiny.en) is what a GPU check carries; it must be the same model."""
    variables = read_ct2_variables(bundled_asr_dir() / "model.bin", prefix="encoder/")
    write_ct2_variables(tmp_path / "model.bin", variables)
    back = read_ct2_variables(tmp_path / "model.bin")
    assert back.keys() == variables.keys()
    for name, array in variables.items():
        assert back[name].dtype == array.dtype and np.array_equal(back[name], array)
    rebuilt = WhisperEncoderStack.from_ct2(tmp_path)
    for (k, a), (_, b) in zip(encoder.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(a, b), k


def _with_room_tone(x: np.ndarray, snr_db: float, pad_s: float = 1.0, seed: int = 0) -> tuple[np.ndarray, int]:
    from scipy.signal import lfilter

    pad = int(pad_s * 16000)
    y = np.concatenate([np.zeros(pad, np.float32), x, np.zeros(pad, np.float32)])
    noise = lfilter([1.0], [1, -0.95], np.random.default_rng(seed).standard_normal(len(y)))
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2)) / 10 ** (snr_db / 20)
    return (y + noise).astype(np.float32), pad


def test_speech_mask_leaves_out_room_tone(speech):
    """Room tone around the speech (20 dB SNR) passes the peak-relative mask but not the noise floor's."""
    import torch

    from emostream.engine.logmel import LogMel
    from emostream.engine.sec import speech_frame_mask

    noisy, pad = _with_room_tone(speech["happy"], 20.0)
    mel = LogMel()(torch.from_numpy(noisy)[None])
    frames = (mel.shape[-1] + 1) // 2
    gated = speech_frame_mask(mel, frames)[0].numpy()
    peak_only = speech_frame_mask(mel, frames, noise_gate=False)[0].numpy()
    edge = pad // 320 - 3  # 20 ms per encoder frame; stay clear of the speech onset
    tone = np.r_[0:edge, frames - edge:frames]
    assert peak_only[tone].mean() > 0.9, "the old mask pools room tone"
    assert gated[tone].mean() < 0.1, "the noise-floor mask must not"
    speech_frames = np.arange(pad // 320 + 5, frames - pad // 320 - 5)
    assert gated[speech_frames].mean() > 0.5


def test_classify_judges_the_speech_span(recognizer, speech):
    """A file is trimmed to where the segmenter finds speech, so room tone does not count."""
    noisy, pad = _with_room_tone(speech["happy"], 20.0, pad_s=1.5)
    result = recognizer.classify(noisy)
    start, end = result.speech_s
    assert pad / 16000 - 0.7 <= start <= pad / 16000 + 0.3
    assert (pad + len(speech["happy"])) / 16000 - 0.5 <= end <= (pad + len(speech["happy"])) / 16000 + 0.7
    clean = recognizer.classify(speech["happy"])
    assert clean.speech_s[0] >= 0 and clean.speech_s[1] <= len(speech["happy"]) / 16000 + 1e-3
