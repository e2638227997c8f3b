import numpy as np
import pytest

from emostream.engine.asr import ASRConfig, SpeechRecognizer, is_runaway, resolve_asr_model


@pytest.fixture(scope="module")
def asr():
    return SpeechRecognizer(ASRConfig(cpu_threads=2, context="full"))


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


@pytest.fixture(scope="module")
def asr_real():
    return SpeechRecognizer(ASRConfig(cpu_threads=2, context="real"))


def test_real_length_context_hears_the_same_words(asr, asr_real, speech):
    """Utterance + 2.56 s of zero audio instead of a 30 s window: the same words (WER against the
    full-window transcript), from the short path itself, with a confidence."""
    import jiwer

    for wave in speech.values():
        full, real = asr.transcribe(wave), asr_real.transcribe(wave)
        assert real.context == "real", real
        assert jiwer.wer(full.text.lower(), real.text.lower()) <= 0.2, (full.text, real.text)
        assert 0.0 < real.confidence <= 1.0


def test_real_length_runaway_falls_back_to_the_full_window(asr, speech):
    """A cap of one token cannot hold a sentence: the short decode counts as a runaway and the
    utterance is decoded again with the full window, never returned truncated."""
    capped = SpeechRecognizer(ASRConfig(cpu_threads=2, context="real", tokens_per_s=0.0, extra_tokens=1))
    t = capped.transcribe(speech["happy"])
    assert t.context == "real->full"
    assert t.text == asr.transcribe(speech["happy"]).text


def test_real_length_noise_and_silence_stay_empty(asr_real):
    rng = np.random.default_rng(1)
    for x in ((0.02 * rng.standard_normal(16000 * 3)).astype(np.float32), np.zeros(16000, np.float32)):
        t = asr_real.transcribe(x)
        assert t.text == "" and t.confidence == 0.0, t


def test_runaway_detector():
    from faster_whisper.transcribe import get_compression_ratio

    def runaway(text, tokens=10, cap=40):
        return is_runaway(text, tokens, cap, 2.4, get_compression_ratio)

    assert runaway("Dogs are sitting by the door. Dogs are sitting by the door.")
    assert runaway("Kids are talking by the door.", tokens=40)  # hit the cap
    assert runaway(" ".join(["so sorry about that"] * 6))
    assert not runaway("Kids are talking by the door.")
    assert not runaway("I know, I know, you told me twice.")  # short repeats are speech, not a loop
    assert not runaway("")
    with pytest.raises(ValueError, match="context"):
        ASRConfig(context="half")


def test_a_full_window_loop_is_dropped_not_published(speech):
    """A transcript that compresses beyond the threshold is a loop: dropped and flagged. A threshold
    no real sentence stays under forces that path on real speech."""
    strict = SpeechRecognizer(ASRConfig(cpu_threads=2, max_compression_ratio=0.1, context="full"))
    t = strict.transcribe(speech["happy"])
    assert t.runaway and t.text == "" and t.confidence == 0.0


def test_partials_use_the_short_window_and_never_the_fallback(asr_real, speech):
    """The first second of a sentence still being spoken is heard; an untrusted decode gives None
    (the partial is skipped) instead of a 30 s decode; silence gives an empty transcript."""
    first_second = speech["sad"][:16000]
    t = asr_real.transcribe_partial(first_second)
    assert t is not None and t.context == "real" and "miss" in t.text.lower(), t
    capped = SpeechRecognizer(ASRConfig(cpu_threads=2, context="real", tokens_per_s=0.0, extra_tokens=1))
    assert capped.transcribe_partial(speech["happy"]) is None
    silent = asr_real.transcribe_partial(np.zeros(16000, np.float32))
    assert silent is None or silent.text == ""


def test_batched_decodes_are_the_single_decodes(asr_real, speech):
    """transcribe_many (training's path) returns what transcribe returns, field for field: speech,
    noise (left to the full window's no-speech rule), a long utterance (its own window, alone) and a
    sentence under a token cap so short that only it runs away in its batch."""
    rng = np.random.default_rng(3)
    waves = [*speech.values(), (0.02 * rng.standard_normal(16000 * 2)).astype(np.float32),
             np.concatenate(list(speech.values()))]
    assert asr_real.transcribe_many(waves, batch_size=3) == [asr_real.transcribe(w) for w in waves]
    capped = SpeechRecognizer(ASRConfig(cpu_threads=2, context="real", tokens_per_s=1.0, extra_tokens=2))
    tight = [speech["happy"], np.zeros(8000, np.float32), speech["happy"][:16000]]
    assert capped.transcribe_many(tight) == [capped.transcribe(w) for w in tight]
    assert capped.transcribe_many(tight)[0].context == "real->full"


def test_parallel_decodes_share_one_model_and_equal_the_single_ones(asr_real, speech):
    """``parallel=2`` (a worker's --concurrency 2): two CTranslate2 replicas of one model, so two
    threads decode at once instead of queueing; each transcript is what the one-replica model gives."""
    from concurrent.futures import ThreadPoolExecutor

    two = SpeechRecognizer(ASRConfig(cpu_threads=1, context="real", parallel=2))
    assert two.model.model.num_workers == 2 and asr_real.model.model.num_workers == 1
    waves = list(speech.values()) * 2
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(two.transcribe, waves))
    assert [t.text for t in together] == [asr_real.transcribe(w).text for w in waves]
    with pytest.raises(ValueError, match="parallel"):
        ASRConfig(parallel=0)


def test_a_released_model_loads_again_on_use(speech):
    asr = SpeechRecognizer(ASRConfig(cpu_threads=2, context="real"))
    before = asr.transcribe(speech["happy"])
    asr.release()
    assert asr._loaded is None
    assert asr.transcribe(speech["happy"]) == before
