"""The torch front end and the Whisper encoder against their references, on real speech."""

import ctranslate2
import numpy as np
import pytest
import torch
from faster_whisper.feature_extractor import FeatureExtractor

from emostream.engine.asr import bundled_asr_dir
from emostream.engine.ct2_weights import CT2FormatError, read_ct2_variables
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
