"""Real audio for the tests: espeak-ng speech, silence, noise; generated once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from services import unavailable
import soundfile as sf

from emostream.engine.training.corpora import shared_data_dir
from emostream.engine.training.speech_synth import Voice, espeak_available, speak, spoken_dialogue

SENTENCES = {
    "happy": "This is the best day of my life, I am so happy!",
    "sad": "I miss her so much, everything feels empty and sad.",
}


def pytest_collection_modifyitems(config, items):
    if not shared_data_dir().is_dir():
        skip = pytest.mark.skip(reason=f"shared corpora not found at {shared_data_dir()} (CI has ../shared/data)")
        for item in items:
            if "needs_data" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def speech() -> dict[str, np.ndarray]:
    if not espeak_available():
        unavailable("espeak-ng is not installed (apt-get install espeak-ng; .ci/run does)")
    return {name: speak(text, Voice("en-us", 160, 50)) for name, text in SENTENCES.items()}


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory, speech) -> Path:
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    sf.write(d / "happy.wav", speech["happy"], 16000)
    # the same speech as 44.1 kHz stereo FLAC: exercises resampling and downmixing
    import soxr

    up = soxr.resample(speech["sad"], 16000, 44100)
    sf.write(d / "sad_stereo_44k.flac", np.stack([up, 0.5 * up], axis=1), 44100)
    sf.write(d / "silence.wav", np.zeros(32000, np.float32), 16000)
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 16000)
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + rng.bytes(200))
    nan = speech["happy"].copy()
    nan[1000:1010] = np.nan
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(d / "noise.wav", (0.05 * rng.standard_normal(32000)).astype(np.float32), 16000)
    sf.write(d / "too_long.wav", (0.05 * rng.standard_normal(16000 * 40)).astype(np.float32), 16000)
    clipped = np.clip(speech["happy"] * 8.0, -1.0, 1.0)
    sf.write(d / "clipped.wav", clipped, 16000)
    return d


@pytest.fixture(scope="session")
def ravdess_example() -> Path:
    root = shared_data_dir() / "ravdess"
    if not root.is_dir():
        pytest.skip(f"RAVDESS not found at {root}")
    return root / "Actor_01" / "03-01-05-02-01-01-01.flac"


@pytest.fixture(scope="session")
def recognizer():
    """The shipped models, loaded once for every test that needs them."""
    from emostream.engine.recognizer import Recognizer

    return Recognizer(torch_threads=2)


DIALOGUE = (
    "Good morning, I finally got the job I wanted.",
    "Why would you say something so cruel to me?",
    "I am not sure what to think about all this.",
    "Please, please tell me everything will be fine.",
)


class Dialogue:
    """Spoken sentences separated by pauses, written as one file; ``spans`` are the true speech times."""

    def __init__(self, path: Path, sentences: tuple[str, ...], spans: list[tuple[float, float]], audio: np.ndarray):
        self.path, self.sentences, self.spans, self.audio = path, sentences, spans, audio


def make_dialogue(path: Path, sentences=DIALOGUE) -> Dialogue:
    audio, spans = spoken_dialogue(sentences)
    sf.write(path, audio, 16000)
    return Dialogue(path, tuple(sentences), spans, audio)


@pytest.fixture(scope="session")
def dialogue(tmp_path_factory, speech) -> Dialogue:
    return make_dialogue(tmp_path_factory.mktemp("dialogue") / "dialogue.wav")


@pytest.fixture
def endpoint() -> str:
    """A free localhost TCP endpoint for a real ZeroMQ socket."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"
