"""The union set: RAVDESS voices (emotion in the voice, neutral words) plus MELD lines spoken by
espeak-ng (emotion in the words, flat voice), each with the ASR transcript the product would see.

Transcripts are cached as JSON; the synthetic waveforms are regenerated from the seed when needed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from tqdm import tqdm

from emostream.engine.asr import SpeechRecognizer, Transcript
from emostream.engine.training.corpora import MeldLine, RavdessClip, meld_lines
from emostream.engine.training.speech_synth import Voice, speak

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpokenLine:
    line: MeldLine
    voice: Voice


def spoken_meld(split: str, limit: int | None, seed: int, draw=Voice.draw) -> list[SpokenLine]:
    """A seeded, label-stratified subset of a MELD split, each line with its own drawn voice."""
    rng = np.random.default_rng(seed)
    lines = [l for l in meld_lines(split) if len(l.text.split()) >= 2]
    if limit is not None and limit < len(lines):
        labels = np.array([l.label_index for l in lines])
        keep: list[int] = []
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            take = max(1, int(round(limit * len(idx) / len(lines))))
            keep.extend(rng.choice(idx, size=min(take, len(idx)), replace=False).tolist())
        lines = [lines[i] for i in sorted(keep)]
    return [SpokenLine(l, draw(rng)) for l in lines]


def synthesize(items: list[SpokenLine]) -> list[np.ndarray]:
    return [speak(s.line.text, s.voice) for s in tqdm(items, desc="espeak-ng", unit="line", leave=False)]


# Kokoro voices held out of fusion training (each accent/sex group keeps some in training)
NEURAL_TEST_VOICES = ("af_nova", "af_sky", "am_echo", "am_onyx", "bf_lily", "bm_lewis")


@dataclass(frozen=True)
class NeuralLine:
    line: MeldLine
    voice: str
    speed: float


def neural_meld(split: str, limit: int | None, seed: int, voices: list[str]) -> list[NeuralLine]:
    """The same seeded MELD lines as ``spoken_meld``, each with a Kokoro voice and speed drawn from ``voices``."""
    rng = np.random.default_rng([seed, 7])
    return [NeuralLine(s.line, str(rng.choice(voices)), float(rng.uniform(0.9, 1.1)))
            for s in spoken_meld(split, limit, seed)]


def synthesize_neural(cache: Path, name: str, items: list[NeuralLine], processes: int = 1) -> list[np.ndarray]:
    """Kokoro waveforms, cached (fp16) in ``cache/kokoro_<name>.npz``, spoken by ``processes``
    one-thread workers; needs the ``tts`` extra."""
    path = cache / f"kokoro_{name}.npz"
    if path.exists():
        z = np.load(path)
        if len(z["lengths"]) == len(items):
            return [w.astype(np.float32) for w in np.split(z["samples"], np.cumsum(z["lengths"])[:-1])]
    from emostream.engine.training.neural_tts import KokoroTTS, speak_many

    tts = KokoroTTS(threads=1)  # fails here, in the parent, when the extra or the voices are missing
    jobs = [(i.line.text, i.voice, i.speed) for i in items]
    waves = list(tqdm(speak_many(tts, jobs, processes), total=len(jobs), desc=f"Kokoro {name}", unit="line"))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, samples=np.concatenate(waves).astype(np.float16), lengths=np.array([len(w) for w in waves]))
    return waves


def transcripts(cache: Path, name: str, asr: SpeechRecognizer,
                waveforms: list[np.ndarray] | Callable[[], list[np.ndarray]], count: int | None = None
                ) -> list[Transcript]:
    """ASR of ``waveforms``, cached per set *and* decoding context (a "full"-window cache never
    stands in for the real-length path the product runs). ``waveforms`` may be a function that
    makes them, called only when the cache (of ``count`` rows) is missing."""
    path = cache / f"asr_{asr.config.context}_{name}.json"
    count = len(waveforms) if count is None else count  # type: ignore[arg-type]
    if path.exists():
        rows = json.loads(path.read_text())
        if len(rows) == count:
            return [Transcript(**r) for r in rows]
    waves = waveforms() if callable(waveforms) else waveforms
    out: list[Transcript] = []
    with tqdm(total=len(waves), desc=f"ASR {name}", unit="clip") as bar:
        for k in range(0, len(waves), 64):
            out += asr.transcribe_many(waves[k:k + 64])
            bar.update(len(waves[k:k + 64]))
    asr.release()  # torch work between transcription batches runs at full speed without a live model
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(t) for t in out]))
    return out


def ravdess_waveforms(clips: list[RavdessClip]) -> list[np.ndarray]:
    return [sf.read(str(c.path), dtype="float32")[0] for c in clips]
