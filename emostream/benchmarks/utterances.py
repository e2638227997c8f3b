"""The fixed set of real utterances every benchmark uses: espeak-ng sentences, plus RAVDESS clips
from ``../shared/data`` when present (same files every run, so results compare across runs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SENTENCES = (
    "Good morning, I finally got the job I wanted.",
    "Why would you say something so cruel to me?",
    "I am not sure what to think about all this.",
    "Please, please tell me everything will be fine.",
    "That is the funniest thing I have heard all week.",
    "Get out of my office right now.",
    "I lost my keys again, and the bus already left.",
    "Wow, I did not expect a party for my birthday!",
    "The meeting has been moved to Thursday afternoon.",
    "Something is moving in the dark, I am scared.",
    "This food smells rotten, I cannot eat it.",
    "We won the match, we actually won!",
)


@dataclass(frozen=True)
class BenchUtterance:
    name: str
    samples: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.samples) / 16000


def bench_utterances(count: int, ravdess_clips: int = 0) -> list[BenchUtterance]:
    from emostream.engine.training.speech_synth import VOICES, Voice, speak

    out = [BenchUtterance(f"espeak-{i:02d}", speak(text, Voice(VOICES[i % 4], 165, 50)))
           for i, text in enumerate(SENTENCES[:count])]
    if ravdess_clips:
        from emostream.engine.training.corpora import shared_data_dir
        from emostream.streaming.audio import load_audio

        root = shared_data_dir() / "ravdess"
        if root.is_dir():
            files = sorted(root.glob("Actor_2[1-4]/*.flac")) or sorted(root.glob("Actor_*/*.*"))
            step = max(1, len(files) // ravdess_clips)
            out += [BenchUtterance(f"ravdess-{p.stem}", load_audio(p)) for p in files[::step][:ravdess_clips]]
    return out


def dialogue(stream_index: int, sentences: int, pause_s: float = 1.0) -> np.ndarray:
    """One stream's recording: sentences rotated per stream, voices varied, start staggered, so
    several streams do not all close utterances at the same instant."""
    from emostream.engine.training.speech_synth import VOICES, Voice, spoken_dialogue

    order = [SENTENCES[(stream_index * 5 + i) % len(SENTENCES)] for i in range(sentences)]
    voices = (Voice(VOICES[stream_index % len(VOICES)], 165, 50), Voice(VOICES[(stream_index + 3) % len(VOICES)], 175, 45))
    audio, _ = spoken_dialogue(order, pause_s=pause_s, lead_s=0.5 + 0.77 * stream_index, voices=voices)
    return audio
