"""Speak text with espeak-ng: the flat-voice half of the union set, and test fixtures.

Voices, rates and pitches vary per line (seeded), so the text set is not one synthetic voice.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from emostream.streaming.audio import to_mono_16k

VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f2", "en+m5", "en-gb-x-rp", "en-029")

# The fusion search's text set: accents x voice variants, with accents AND variants disjoint between
# the lines it trains on and the lines it is tested on, so a cell that learned "this synthesizer
# voice -> trust the words" meets voices it has never heard.
TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-x-gbclan")
TRAIN_VARIANTS = ("", "+m1", "+m3", "+f2", "+f3", "+Andy", "+Annie", "+Michael")
HELDOUT_ACCENTS = ("en-gb-scotland", "en-us-nyc", "en-gb-x-gbcwmd")
HELDOUT_VARIANTS = ("+f4", "+m5", "+Alicia", "+Steph", "+klatt", "+grandpa")
SEARCH_TRAIN_VOICES = tuple(a + v for a in TRAIN_ACCENTS for v in TRAIN_VARIANTS)
SEARCH_HELDOUT_VOICES = tuple(a + v for a in HELDOUT_ACCENTS for v in HELDOUT_VARIANTS)


class SynthError(RuntimeError):
    pass


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@dataclass(frozen=True)
class Voice:
    name: str = "en-us"
    rate: int = 165  # words per minute
    pitch: int = 50  # 0..99

    @classmethod
    def draw(cls, rng: np.random.Generator, voices: tuple[str, ...] = VOICES, rates: tuple[int, int] = (135, 196),
             pitches: tuple[int, int] = (30, 71)) -> "Voice":
        return cls(str(rng.choice(voices)), int(rng.integers(*rates)), int(rng.integers(*pitches)))


def speak(text: str, voice: Voice = Voice()) -> np.ndarray:
    """Text -> float32 mono 16 kHz waveform."""
    if not espeak_available():
        raise SynthError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        proc = subprocess.run(
            ["espeak-ng", "-v", voice.name, "-s", str(voice.rate), "-p", str(voice.pitch), "-w", str(out), "--", text],
            capture_output=True, text=True, timeout=60,
        )
        if proc.returncode != 0 or not out.exists():
            raise SynthError(f"espeak-ng failed for voice {voice.name}: {proc.stderr.strip()}")
        data, rate = sf.read(str(out), dtype="float32", always_2d=True)
    return to_mono_16k(data, rate)


def spoken_dialogue(sentences: tuple[str, ...] | list[str], pause_s: float = 0.9, lead_s: float = 0.5,
                    voices: tuple[Voice, ...] = (Voice("en-us", 165, 50), Voice("en-gb", 165, 50))
                    ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Sentences one after another with pauses, as one 16 kHz recording (tests and benchmarks).
    Returns the audio and, per sentence, where sound actually is (espeak pads with silence)."""
    rate = 16000
    parts, spans, pos = [np.zeros(int(lead_s * rate), np.float32)], [], int(lead_s * rate)
    for i, text in enumerate(sentences):
        wave = speak(text, voices[i % len(voices)])
        audible = np.flatnonzero(np.abs(wave) > 1e-3)
        spans.append(((pos + audible[0]) / rate, (pos + audible[-1]) / rate))
        parts += [wave, np.zeros(int(pause_s * rate), np.float32)]
        pos += len(wave) + int(pause_s * rate)
    return np.concatenate(parts), spans
