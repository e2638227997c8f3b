"""The shipped model end to end on real speech (no mocks)."""

import numpy as np
import pytest

from emostream.engine.bundle import Bundle, BundleError
from emostream.labels import LABELS
from emostream.streaming.audio import AudioError


def test_classify_speech(recognizer, speech):
    r = recognizer.classify(speech["happy"])
    assert r.label in LABELS
    assert set(r.probs) == set(LABELS)
    assert abs(sum(r.probs.values()) - 1.0) < 1e-4
    assert r.confidence == max(r.probs.values())
    assert -1.0 <= r.valence <= 1.0 and -1.0 <= r.arousal <= 1.0
    assert r.transcript
    assert set(r.timings_ms) == {"sec", "asr", "text", "fusion"}
    assert all(v >= 0 for v in r.timings_ms.values())


def test_emotional_words_drive_the_text_branch(recognizer, speech):
    """espeak-ng's flat voice carries no emotion; the words do: fusion must follow TEC."""
    happy = recognizer.classify(speech["happy"])
    sad = recognizer.classify(speech["sad"])
    assert happy.probs["happy"] > sad.probs["happy"]
    assert sad.probs["sad"] > happy.probs["sad"]
    assert happy.valence > sad.valence


def test_empty_transcript_falls_back_on_sec(recognizer, speech):
    sec = recognizer.sec(speech["sad"])
    none = recognizer.text("")
    assert not none.has_text
    probs, valence, arousal = recognizer.fuse(sec, none, 0.0)
    assert probs.shape == (len(LABELS),) and abs(probs.sum() - 1) < 1e-5
    # without text, the fused answer follows the SEC branch's own ranking
    assert int(np.argmax(probs)) == int(np.argmax(sec.logits))


def test_silence_is_refused(recognizer):
    with pytest.raises(AudioError, match="silent"):
        recognizer.classify(np.zeros(32000, np.float32))


def test_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="emostream train"):
        Bundle.load(tmp_path / "nothing")


@pytest.mark.needs_data
def test_shipped_model_recognises_ravdess_anger(recognizer, ravdess_example):
    """An intense angry RAVDESS clip (in the training actors: checks the weights loaded, not generalisation)."""
    import soundfile as sf

    wave, _ = sf.read(ravdess_example, dtype="float32")
    r = recognizer.classify(wave)
    assert r.label == "angry", r.probs
    assert r.arousal > 0.3


def test_words_carry_their_own_valence_on_the_wire(recognizer, speech):
    """Valence from the words alone (EmoBank regression): positive for happy words, negative for sad
    ones; absent without words; published as the schema's ``words`` object."""
    import time

    from emostream.protocol import emotion_message, validate
    from emostream.streaming.frames import Utterance

    happy, sad = recognizer.classify(speech["happy"]), recognizer.classify(speech["sad"])
    assert happy.words_va is not None and sad.words_va is not None
    assert happy.words_va[0] > 0.1 > -0.1 > sad.words_va[0]
    assert recognizer.text("").va is None
    utt = Utterance("mic", 1, 0.0, 2.0, speech["happy"], time.time(), time.perf_counter())
    timings = dict.fromkeys(("queue_wait", "sec", "asr", "text", "fusion", "branches", "sec_asr_overlap",
                             "vad_close_to_publish"), 1.0)
    message = validate(emotion_message(utt, happy, timings, time.time()))
    assert message["words"] == {"valence": round(happy.words_va[0], 4), "arousal": round(happy.words_va[1], 4)}


def test_a_batch_of_utterances_is_recognised_as_each_alone(recognizer, dialogue, speech):
    """Real speech of unequal lengths from several 'streams', a partial (the first half of a sentence),
    an utterance longer than the shared ASR window (its own window) and a silent one: the batch
    gives each the transcript, label and probabilities it gets alone, and the silent one its own
    AudioError without costing the others their results."""
    from concurrent.futures import ThreadPoolExecutor

    from emostream.streaming.audio import AudioError

    sentences = [dialogue.audio[int(a * 16000):int(b * 16000) + 4800] for a, b in dialogue.spans]
    waves = [*sentences, speech["happy"][: len(speech["happy"]) // 2], np.concatenate(sentences[:3]),
             np.zeros(16000, np.float32), speech["sad"]]
    partial = [False] * len(sentences) + [True, False, False, False]
    assert len({len(w) for w in waves}) == len(waves) and len(waves[-3]) / 16000 > 7.44
    with ThreadPoolExecutor(1) as pool:
        batched = recognizer.recognize_batch(waves, pool, partial)
        alone = []
        for w, p in zip(waves, partial):
            try:
                alone.append(recognizer.recognize(w, pool, partial=p))
            except AudioError as exc:
                alone.append(exc)
    assert isinstance(batched[-2], AudioError) and isinstance(alone[-2], AudioError)
    for i, (b, a) in enumerate(zip(batched, alone)):
        if isinstance(a, AudioError) or a is None:
            assert type(b) is type(a), (i, b, a)
            continue
        assert (b.result.transcript, b.result.label, b.asr_context) == (a.result.transcript, a.result.label,
                                                                         a.asr_context), i
        assert b.result.asr_confidence == pytest.approx(a.result.asr_confidence, abs=1e-6)
        assert [b.result.probs[k] for k in sorted(a.result.probs)] == pytest.approx(
            [a.result.probs[k] for k in sorted(a.result.probs)], abs=1e-4), i
        assert b.result.valence == pytest.approx(a.result.valence, abs=1e-4)
        assert set(b.timings_ms) == set(a.timings_ms)
