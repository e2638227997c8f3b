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
