"""The fusion search's data: the union set rebuilt so that "synthetic voice -> trust the words" is
not a usable shortcut.

- RAVDESS (emotional voices, two neutral sentences): all 1,200 clips, a seeded half of them with
  noise (pink, 5-20 dB SNR) and, for half of those, synthetic reverberation (RT60 0.3-0.9 s).
- MELD lines (emotional words) spoken by espeak-ng with many voices: 5 accents x 8 variants,
  rates 120-210 wpm, pitches 20-80 for the lines the cell trains on (MELD dev); 3 other accents x
  6 other variants for the lines it is tested on (MELD test). The same seeded half gets noise and
  reverberation.

Every item goes through the real ASR and the shipped encoders; the cache holds sequences, the SEC
probe's raw statistics and the TEC outputs (``fusion_features``), plus a tag saying how the audio
was made, so the synthesizer check can split results by voice and degradation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emostream.engine.fusion.searched import BUNDLE_PARTS_READ
from emostream.engine.training.fusion_features import SequenceFeatures, sequence_features

log = logging.getLogger(__name__)

PARTS = ("ravdess", "meld_dev", "meld_test")


@dataclass(frozen=True)
class SearchDataConfig:
    cache: Path = Path(".cache/train")
    meld_dev_lines: int = 600
    meld_test_lines: int = 600
    degraded_share: float = 0.5
    seed: int = 0


def _pink_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import lfilter

    pink = lfilter([0.05], [1, -0.95], rng.standard_normal(x.size)).astype(np.float32)
    gain = np.sqrt((np.mean(x**2) + 1e-12) / (np.mean(pink**2) + 1e-12) / 10 ** (snr_db / 10))
    return (x + pink * gain).astype(np.float32)


def _noise_tail_reverb(x: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import fftconvolve

    t = np.arange(int(rt60 * 16000)) / 16000
    ir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0
    y = fftconvolve(x, ir)[: x.size]
    return (y * (np.abs(x).max() / (np.abs(y).max() + 1e-9))).astype(np.float32)


def degrade(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise at 5-20 dB SNR, with synthetic reverberation first half of the time.

    Kept as issue 6's search data was built (the shipped searched cell's provenance); the model's
    multi-condition training uses ``training.augment`` (audiomentations + pyroomacoustics)."""
    if rng.random() < 0.5:
        x = _noise_tail_reverb(x, float(rng.uniform(0.3, 0.9)), rng)
    y = _pink_noise(x, float(rng.uniform(5, 20)), rng)
    peak = float(np.abs(y).max())
    return y / peak * 0.99 if peak > 0.99 else y


def _degrade_half(waves: list[np.ndarray], share: float, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    flags = np.zeros(len(waves), bool)
    flags[rng.choice(len(waves), size=int(round(share * len(waves))), replace=False)] = True
    return [degrade(w, rng) if f else w for w, f in zip(waves, flags)], flags


def cache_key(cfg: SearchDataConfig, bundle) -> str:
    """The sequences hold the branches' outputs and the lines the config draws: another bundle,
    seed or line count builds its own cache (the dev-line folds follow the drawn lines' words)."""
    import hashlib

    drawn = f"{cfg.seed}/{cfg.meld_dev_lines}/{cfg.meld_test_lines}/{cfg.degraded_share}"
    return f"{hashlib.sha1(drawn.encode()).hexdigest()[:6]}_{bundle.digest(*BUNDLE_PARTS_READ)}"


def build_search_data(cfg: SearchDataConfig, recognizer) -> dict[str, SequenceFeatures]:
    """The three parts, each cached as ``search_<part>_<cache_key>.npz`` (built on first use: ~25 min
    on 2 cores)."""
    from emostream.engine.training.corpora import ravdess_clips
    from emostream.engine.training.speech_synth import SEARCH_HELDOUT_VOICES, SEARCH_TRAIN_VOICES, Voice
    from emostream.engine.training.union import ravdess_waveforms, spoken_meld, synthesize, transcripts

    out: dict[str, SequenceFeatures] = {}
    key = cache_key(cfg, recognizer.bundle)
    for part in PARTS:
        path = cfg.cache / f"search_{part}_{key}.npz"
        if path.exists():
            out[part] = SequenceFeatures.load(path)
            continue
        rng = np.random.default_rng([cfg.seed, PARTS.index(part)])
        if part == "ravdess":
            clips = ravdess_clips()
            clean = ravdess_waveforms(clips)
            waves, flags = _degrade_half(clean, cfg.degraded_share, rng)
            clean_tr = transcripts(cfg.cache, f"ravdess{len(clips)}", recognizer.asr, clean)
            noisy = np.flatnonzero(flags)
            noisy_tr = transcripts(cfg.cache, f"search_ravdess_degraded{len(noisy)}_s{cfg.seed}", recognizer.asr,
                                   [waves[i] for i in noisy])
            tr = list(clean_tr)
            for i, t in zip(noisy, noisy_tr):
                tr[i] = t
            labels = [c.label_index for c in clips]
            groups = [f"ravdess:{c.actor:02d}" for c in clips]
            tags = [f"voice=ravdess{c.actor:02d};degraded={int(f)}" for c, f in zip(clips, flags)]
        else:
            split, limit, voices = (("dev", cfg.meld_dev_lines, SEARCH_TRAIN_VOICES) if part == "meld_dev"
                                    else ("test", cfg.meld_test_lines, SEARCH_HELDOUT_VOICES))
            lines = spoken_meld(split, limit, cfg.seed + PARTS.index(part),
                                draw=lambda r: Voice.draw(r, voices, rates=(120, 211), pitches=(20, 81)))
            waves, flags = _degrade_half(synthesize(lines), cfg.degraded_share, rng)
            tr = transcripts(cfg.cache, f"search_{part}{len(waves)}_s{cfg.seed}", recognizer.asr, waves)
            labels = [s.line.label_index for s in lines]
            groups = [part] * len(lines)
            tags = [f"voice={s.voice.name};degraded={int(f)}" for s, f in zip(lines, flags)]
        out[part] = sequence_features(recognizer, waves, [t.text for t in tr], [t.confidence for t in tr], labels,
                                      groups, desc=f"{part} sequences", tags=tags)
        cfg.cache.mkdir(parents=True, exist_ok=True)
        out[part].save(path)
        log.info("cached %s (%d utterances)", path, len(out[part]))
    return out


def meld_dev_keys(cfg: SearchDataConfig) -> np.ndarray:
    """The words of each spoken MELD dev line, in the cached part's order: the search holds out
    fifths of these lines by their words (a repeated line never straddles a fold)."""
    from emostream.engine.training.metrics import wer_words
    from emostream.engine.training.union import spoken_meld

    lines = spoken_meld("dev", cfg.meld_dev_lines, cfg.seed + PARTS.index("meld_dev"))
    return np.array([wer_words(s.line.text) for s in lines])
