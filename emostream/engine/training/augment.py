"""Multi-condition degradation for training and for the robustness evaluation.

What a desktop microphone in a room adds to studio speech: additive noise of several kinds
(coloured noise, babble of other talkers, mains hum, keyboard clicks, ventilation rumble) over
0-30 dB SNR, reverberation (image-source room impulse responses from pyroomacoustics), channel
effects (telephone band, EQ tilt, MP3 at low bit rates, gain, mild clipping) and speed
perturbation. Mixing, filtering and codecs are audiomentations'; only the noise *signals* and the
rooms are made here, once, into a seeded ``NoiseBank`` folder.

The bank has a ``train`` and a ``test`` part (other babble voices, other random rooms, other noise
draws), so the evaluation conditions never contain a noise recording or room trained on.
SNR is audiomentations' convention: clip RMS over noise RMS, both over the whole clip.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from emostream.streaming.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

NOISE_KINDS = ("babble", "hum", "keyboard", "ventilation", "office")  # recorded into the bank; colour is generated
PARTS = ("train", "test")
NOISE_SECONDS = 12.0
BANK_VERSION = 1

# Babble talkers: espeak-ng voices, disjoint between the parts (test talkers are never trained on).
BABBLE_VOICES = {
    "train": ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-029", "en-gb-x-rp+f2", "en-us+m1", "en-gb+f3"),
    "test": ("en-gb-scotland", "en-us-nyc+f4", "en-gb-x-gbcwmd+m5", "en-us+Alicia", "en-gb-scotland+f2"),
}
BABBLE_LINES = (
    "I think the meeting moved to three, but nobody told the people downstairs.",
    "Could you send me the numbers from last quarter before lunch?",
    "We drove out to the lake on Sunday and the road was closed again.",
    "The printer on the second floor has been jammed since this morning.",
    "She said the new schedule starts next week, or maybe the week after.",
    "If the train is late again I am going to take the bus instead.",
    "They are painting the hallway, so use the other door for now.",
    "My sister finally found an apartment close to the station.",
    "Let us go over the plan one more time before the call.",
    "The coffee machine in the kitchen makes a strange noise lately.",
    "Half of the team is working from home on Fridays now.",
    "Remember to bring the keys back when you leave tonight.",
)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Kaldi-style speed perturbation (tempo and pitch together)."""
    return soxr.resample(x, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR of an additive mixture, measured as the mixing defines it (whole-clip RMS)."""
    noise = noisy.astype(np.float64) - clean
    return 10.0 * float(np.log10(np.mean(np.square(clean, dtype=np.float64)) / max(np.mean(noise**2), 1e-20)))


# --- noise signals and rooms (the bank) -----------------------------------------------------------
def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz with decaying random harmonics, slight drift, a little hiss."""
    t = np.arange(n) / SAMPLE_RATE
    f0 = float(rng.choice([50.0, 60.0])) * (1 + rng.uniform(-0.003, 0.003))
    x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 9))
    return x + 0.01 * rng.standard_normal(n)


def _keyboard(rng: np.random.Generator, n: int) -> np.ndarray:
    """Typing: bursts of short, decaying, band-limited clicks at a typing rhythm over faint room noise."""
    from scipy.signal import butter, sosfilt

    x = 0.002 * rng.standard_normal(n)
    pos = int(rng.uniform(0, 0.3) * SAMPLE_RATE)
    sos = butter(2, [float(rng.uniform(800, 2000)), float(rng.uniform(4000, 7000))], "bandpass", fs=SAMPLE_RATE, output="sos")
    while pos < n:
        length = int(rng.uniform(0.004, 0.02) * SAMPLE_RATE)
        click = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 4)) * rng.uniform(0.3, 1.0)
        x[pos:pos + length] += sosfilt(sos, click)[: n - pos]
        pos += int(rng.exponential(0.15) * SAMPLE_RATE) + int(0.05 * SAMPLE_RATE)
        if rng.random() < 0.08:  # a pause between words
            pos += int(rng.uniform(0.4, 1.5) * SAMPLE_RATE)
    return x


def _ventilation(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ventilation / room rumble: brown-ish noise, low-passed, slowly modulated."""
    from scipy.signal import butter, sosfilt

    x = np.cumsum(rng.standard_normal(n))
    x = sosfilt(butter(2, 20, "highpass", fs=SAMPLE_RATE, output="sos"), x)
    x = sosfilt(butter(2, float(rng.uniform(300, 1200)), "lowpass", fs=SAMPLE_RATE, output="sos"), x)
    x = x + 0.05 * np.std(x) * rng.standard_normal(n)
    return x * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * np.arange(n) / SAMPLE_RATE))


def _babble(rng: np.random.Generator, n: int, voices: tuple[str, ...], speak: Callable) -> np.ndarray:
    """3-6 talkers, each reading lines back to back from a random start, at random levels."""
    from emostream.engine.training.speech_synth import Voice

    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 7))):
        voice = Voice(str(rng.choice(voices)), int(rng.integers(140, 190)), int(rng.integers(30, 70)))
        talk = np.concatenate([speak(str(line), voice) for line in rng.permutation(BABBLE_LINES)[:6]])
        talk = np.resize(talk, n + SAMPLE_RATE)[int(rng.integers(0, SAMPLE_RATE)):][:n]
        out += talk / (np.sqrt(np.mean(talk**2)) + 1e-9) * rng.uniform(0.5, 1.0)
    return out


def room_impulse_response(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A random shoebox room (3-10 m, RT60 0.2-1.0 s), source and microphone 0.5-3 m apart."""
    import pyroomacoustics as pra

    for _ in range(20):
        dims = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.4, 3.5)])
        rt60 = float(rng.uniform(0.2, 1.0))
        try:
            absorption, order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # the room is too small for that RT60
            continue
        room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(order, 40))
        src = rng.uniform([0.5, 0.5, 1.0], dims - [0.5, 0.5, 0.8])
        mic = src + rng.normal(size=3) * [1.2, 1.2, 0.2]
        if np.all(mic > 0.3) and np.all(mic < dims - 0.3) and 0.5 < np.linalg.norm(mic - src) < 3:
            room.add_source(src)
            room.add_microphone(mic)
            room.compute_rir()
            return np.asarray(room.rir[0][0], np.float32), rt60
    raise RuntimeError("could not place a room")


@dataclass(frozen=True)
class NoiseBank:
    """Seeded noise recordings and impulse responses on disk: ``root/<part>/<kind>_<i>.wav``."""

    root: Path
    per_kind: int = 6
    rooms: int = 24
    seed: int = 0

    def paths(self, kind: str, part: str) -> list[Path]:
        found = sorted((self.root / part).glob(f"{kind}_*.wav"))
        if not found:
            raise FileNotFoundError(f"no {kind} recordings in {self.root / part}; call NoiseBank.build() first")
        return found

    @property
    def ready(self) -> bool:
        return (self.root / "version").is_file() and (self.root / "version").read_text() == str(BANK_VERSION)

    def build(self, speak: Callable | None = None, progress: bool = True) -> "NoiseBank":
        """Write the bank (skipped when it exists). ``speak(text, voice)``: espeak-ng by default."""
        if self.ready:
            return self
        from tqdm import tqdm

        from emostream.engine.training.speech_synth import speak as espeak

        speak = speak or espeak
        n = int(NOISE_SECONDS * SAMPLE_RATE)
        jobs = [(part, kind, i) for part in PARTS for kind in NOISE_KINDS for i in range(self.per_kind)]
        jobs += [(part, "rir", i) for part in PARTS for i in range(self.rooms)]
        for part, kind, i in tqdm(jobs, desc="noise bank", unit="file", disable=not progress):
            rng = np.random.default_rng([self.seed, PARTS.index(part), len(kind), i])
            out = self.root / part / f"{kind}_{i:02d}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            if kind == "rir":
                x, rt60 = room_impulse_response(rng)
            elif kind == "babble":
                x = _babble(rng, n, BABBLE_VOICES[part], speak)
            elif kind == "office":  # the evaluation's room: distant talkers + ventilation + a little typing
                x = (_norm(_babble(rng, n, BABBLE_VOICES[part], speak)) * 0.5 + _norm(_ventilation(rng, n))
                     + _norm(_keyboard(rng, n)) * 0.3 + _norm(_hum(rng, n)) * 0.1)
            else:
                x = {"hum": _hum, "keyboard": _keyboard, "ventilation": _ventilation}[kind](rng, n)
            sf.write(str(out), (0.5 * x / (np.abs(x).max() + 1e-9)).astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
        (self.root / "version").write_text(str(BANK_VERSION))
        return self


def _norm(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


# --- transforms -------------------------------------------------------------------------------------
def noise(bank: NoiseBank, kind: str, part: str, min_snr: float, max_snr: float):
    """Additive noise of one kind at an SNR drawn from [min_snr, max_snr] (audiomentations)."""
    from audiomentations import AddBackgroundNoise, AddColorNoise

    if kind == "colored":  # white to brown, A-weighted half of the time
        return AddColorNoise(min_snr_db=min_snr, max_snr_db=max_snr, min_f_decay=-6.0, max_f_decay=0.0,
                             p_apply_a_weighting=0.5, p=1.0)
    return AddBackgroundNoise([str(p) for p in bank.paths(kind, part)], min_snr_db=min_snr, max_snr_db=max_snr,
                              noise_rms="relative", p=1.0)


def reverb(bank: NoiseBank, part: str):
    from audiomentations import ApplyImpulseResponse

    return ApplyImpulseResponse([str(p) for p in bank.paths("rir", part)], p=1.0, leave_length_unchanged=True)


def telephone_band():
    """300-3400 Hz, as a phone line passes it (steep Butterworth edges)."""
    from audiomentations import Compose, HighPassFilter, LowPassFilter

    return Compose([HighPassFilter(min_cutoff_freq=280, max_cutoff_freq=320, min_rolloff=36, max_rolloff=36, p=1.0),
                    LowPassFilter(min_cutoff_freq=3300, max_cutoff_freq=3500, min_rolloff=36, max_rolloff=36, p=1.0)])


def channel():
    """One microphone/channel effect: telephone band, EQ tilt, low bit-rate MP3 or mild clipping."""
    from audiomentations import ClippingDistortion, HighShelfFilter, LowShelfFilter, Mp3Compression, OneOf

    return OneOf([
        telephone_band(),
        HighShelfFilter(min_gain_db=-12, max_gain_db=8, p=1.0),
        LowShelfFilter(min_gain_db=-12, max_gain_db=8, p=1.0),
        Mp3Compression(min_bitrate=16, max_bitrate=64, backend="fast-mp3-augment", p=1.0),
        ClippingDistortion(min_percentile_threshold=0, max_percentile_threshold=8, p=1.0),
    ])


def _seeded(seed: int) -> None:
    """audiomentations draws from ``random`` and numpy's global state: seed both per item."""
    random.seed(int(seed))
    np.random.seed(seed % 2**32)


def _fit(y: np.ndarray) -> np.ndarray:
    peak = float(np.abs(y).max()) if y.size else 0.0
    return (y / peak * 0.99 if peak > 0.99 else y).astype(np.float32)


@dataclass(frozen=True)
class TrainingDegrader:
    """One random draw of the training conditions per (clip, copy); same seed -> same audio."""

    bank: NoiseBank
    p_speed: float = 0.5
    p_reverb: float = 0.35
    p_noise: float = 0.85
    p_channel: float = 0.4
    snr_db: tuple[float, float] = (0.0, 30.0)
    kinds: tuple[str, ...] = ("colored", "babble", "hum", "keyboard", "ventilation")

    def __call__(self, x: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        _seeded(seed)
        y = speed(x, float(rng.uniform(0.9, 1.1))) if rng.random() < self.p_speed else x.astype(np.float32)
        if rng.random() < self.p_reverb:
            y = reverb(self.bank, "train")(y, SAMPLE_RATE)
        if rng.random() < self.p_noise:
            y = noise(self.bank, str(rng.choice(self.kinds)), "train", *self.snr_db)(y, SAMPLE_RATE)
        if rng.random() < self.p_channel:
            y = channel()(y, SAMPLE_RATE)
        return _fit(y * float(10 ** (rng.uniform(-12, 6) / 20)))


@dataclass(frozen=True)
class Condition:
    """One evaluation condition, built from the bank's test part only."""

    name: str
    snr_db: float | None = None  # office noise at this SNR
    reverb: bool = False
    telephone: bool = False

    def apply(self, bank: NoiseBank, x: np.ndarray, seed: int) -> np.ndarray:
        _seeded(seed)
        y = x.astype(np.float32)
        if self.reverb:
            y = reverb(bank, "test")(y, SAMPLE_RATE)
        if self.snr_db is not None:
            y = noise(bank, "office", "test", self.snr_db, self.snr_db)(y, SAMPLE_RATE)
        if self.telephone:
            y = telephone_band()(y, SAMPLE_RATE)
        return _fit(y)


EVAL_CONDITIONS = (
    Condition("clean"),
    Condition("office 30 dB", 30.0), Condition("office 20 dB", 20.0), Condition("office 10 dB", 10.0),
    Condition("office 5 dB", 5.0), Condition("office 0 dB", 0.0),
    Condition("reverb", reverb=True), Condition("reverb + office 10 dB", 10.0, reverb=True),
    Condition("telephone band", telephone=True),
)
