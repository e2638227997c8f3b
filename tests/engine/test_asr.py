import numpy as np
import pytest

from emostream.engine.asr import ASRConfig, SpeechRecognizer, resolve_asr_model


@pytest.fixture(scope="module")
def asr():
    return SpeechRecognizer(ASRConfig(cpu_threads=2))


def test_transcribes_espeak_sentence(asr, speech):
    t = asr.transcribe(speech["happy"])
    words = t.text.lower()
    assert "happy" in words or "best day" in words, t.text
    assert 0.0 < t.confidence <= 1.0


def test_noise_gives_empty_transcript_not_hallucination(asr):
    rng = np.random.default_rng(1)
    t = asr.transcribe((0.02 * rng.standard_normal(16000 * 3)).astype(np.float32))
    assert t.text == "" and t.empty
    assert t.confidence == 0.0


def test_model_resolution(tmp_path):
    assert resolve_asr_model(None).endswith("model")
    assert resolve_asr_model("tiny.en") == "tiny.en"  # a hub name, for users who are online
    with pytest.raises(FileNotFoundError, match="model.bin"):
        resolve_asr_model(str(tmp_path))
