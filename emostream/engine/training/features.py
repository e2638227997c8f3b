"""The feature stage of ``emostream train``: everything expensive, computed once and cached.

- RAVDESS: Whisper statistics (the shipped ``trim`` front end) of every clip clean, under each
  evaluation condition and as degraded training copies;
- MELD lines spoken by drawn espeak-ng voices (dev lines: fusion training; test lines: testing)
  and by Kokoro voices (dev lines by training voices, test lines by held-out voices; half of each
  degraded), with their statistics;
- tiny.en transcripts of every set the fusion sees, by the real-length path the product runs
  (cache names include the ASR context, so a cache from the 30 s window is never reused).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from emostream.engine.asr import SpeechRecognizer, Transcript, bundled_asr_dir
from emostream.engine.training.augment import EVAL_CONDITIONS, NoiseBank, TrainingDegrader
from emostream.engine.training.corpora import ravdess_clips
from emostream.engine.training.metrics import wer_words
from emostream.engine.training.robust_data import RobustSet, StatsEncoder, seeded, set_features, set_name
from emostream.engine.training.union import (NEURAL_TEST_VOICES, neural_meld, ravdess_waveforms, spoken_meld,
                                             synthesize, synthesize_neural, transcripts)
from emostream.streaming.segmenter import trim_to_speech

log = logging.getLogger(__name__)

FUSED_CONDITIONS = ("clean", "office 10 dB", "office 0 dB", "reverb + office 10 dB")  # ASR'd for the fused rows
FRONT_END = ("trim",)  # what SECModel computes at inference


@dataclass
class Features:
    labels: np.ndarray  # RAVDESS clips
    actors: np.ndarray
    intensity: np.ndarray  # 1.0 strong, 0.7 normal (scales the valence/arousal targets)
    evals: dict[str, dict[str, np.ndarray]]  # condition -> {"trim": (clips, stats)}
    copies: list[dict[str, np.ndarray]]  # degraded training copies
    rav_text: dict[str, list[Transcript]]  # FUSED_CONDITIONS + "train copy 1"
    spoken_stats: dict[str, np.ndarray]  # "train"/"test" (espeak-ng), "neural train"/"neural test" (Kokoro)
    spoken_text: dict[str, list[Transcript]]
    spoken_labels: dict[str, np.ndarray]
    spoken_keys: dict[str, np.ndarray]  # the MELD line's words: copies of one line share a key across sets
    neural_degraded: dict[str, np.ndarray]  # Kokoro sets: which lines are degraded

    @property
    def neural(self) -> bool:
        return "neural train" in self.spoken_stats


def build_features(cfg, asr: SpeechRecognizer) -> Features:
    """``cfg``: pipeline.TrainConfig."""
    bank = NoiseBank(cfg.noise_bank, seed=cfg.seed).build()
    clips = ravdess_clips()
    clean = ravdess_waveforms(clips)
    encoder = StatsEncoder(str(bundled_asr_dir()))
    evals = {c.name: set_features(cfg.cache, RobustSet(c.name, c), bank, clean, encoder, FRONT_END, cfg.seed)
             for c in EVAL_CONDITIONS}
    copies = [set_features(cfg.cache, RobustSet(f"train copy {k}", None, k), bank, clean, encoder, FRONT_END,
                           cfg.seed) for k in range(1, cfg.train_copies + 1)]
    fused_sets = {c.name: RobustSet(c.name, c) for c in EVAL_CONDITIONS if c.name in FUSED_CONDITIONS}
    fused_sets["train copy 1"] = RobustSet("train copy 1", None, 1)
    rav_text = {name: transcripts(cfg.cache, seeded(f"robust_{set_name(name)}_{len(clean)}", cfg.seed), asr,
                                  lambda rset=rset: [trim_to_speech(w)[0] for w in rset.waveforms(bank, clean, cfg.seed)],
                                  count=len(clean))
                for name, rset in fused_sets.items()}
    spoken_stats, spoken_text, spoken_labels, keys, degraded = {}, {}, {}, {}, {}
    for key, items in (("train", spoken_meld("dev", cfg.union_train_lines, cfg.seed)),
                       ("test", spoken_meld("test", cfg.union_test_lines, cfg.seed + 1))):
        path = cfg.cache / f"{seeded(f'meld_{key}{len(items)}', cfg.seed)}_trim_stats.npy"
        waves: list[np.ndarray] = []
        if not path.exists():
            waves = synthesize(items)
            np.save(path, np.stack([encoder(w, FRONT_END)["trim"] for w in waves]))
        spoken_stats[key] = np.load(path)
        spoken_text[key] = transcripts(cfg.cache, seeded(f"meld_{key}{len(items)}", cfg.seed) + "_trimmed", asr,
                                       lambda items=items, waves=waves: [trim_to_speech(w)[0] for w in
                                                                         (waves or synthesize(items))],
                                       count=len(items))
        spoken_labels[key] = np.array([s.line.label_index for s in items])
        keys[key] = np.array([wer_words(s.line.text) for s in items])
    for key, (stats, texts, items, mask) in _neural_lines(cfg, encoder, asr, bank).items():
        spoken_stats[key], spoken_text[key], degraded[key] = stats, texts, mask
        spoken_labels[key] = np.array([item.line.label_index for item in items])
        keys[key] = np.array([wer_words(item.line.text) for item in items])
    return Features(np.array([c.label_index for c in clips]), np.array([c.actor for c in clips]),
                    np.array([1.0 if c.strong else 0.7 for c in clips]), evals, copies, rav_text, spoken_stats,
                    spoken_text, spoken_labels, keys, degraded)


def _neural_lines(cfg, encoder: StatsEncoder, asr: SpeechRecognizer, bank: NoiseBank) -> dict:
    """MELD lines spoken by Kokoro voices (training voices / held-out voices), half of each split
    degraded: training lines like the RAVDESS training copies (the bank's train part), test lines by
    the evaluation conditions in turn (its test part). Needs the ``tts`` extra and its voices; {}
    (logged) otherwise. Values: (SEC stats, transcripts, the spoken lines, degraded mask)."""
    from emostream.engine.training.neural_tts import NeuralTTSUnavailable, kokoro_voices

    if cfg.neural_lines <= 0:
        return {}
    try:
        voices = kokoro_voices()
        if not voices:
            raise NeuralTTSUnavailable("no kokoro-js voices fetched (python -m emostream.engine.training.neural_tts)")
        train_voices = [v for v in voices if v not in NEURAL_TEST_VOICES]
        missing = [v for v in NEURAL_TEST_VOICES if v not in voices]
        if not train_voices or missing:
            raise NeuralTTSUnavailable(f"kokoro-js voices incomplete (no training voices, or held-out voices missing: "
                                       f"{missing}); refetch with python -m emostream.engine.training.neural_tts")
        splits = {"neural train": ("dev", neural_meld("dev", cfg.neural_lines, cfg.seed, train_voices)),
                  "neural test": ("test", neural_meld("test", cfg.neural_lines, cfg.seed + 1, list(NEURAL_TEST_VOICES)))}
        processes = max(1, torch.get_num_threads())  # synthesis is the longest step from an empty cache
        waveforms = {key: synthesize_neural(cfg.cache, seeded(f"{split}{len(items)}", cfg.seed), items, processes)
                     for key, (split, items) in splits.items()}
    except (NeuralTTSUnavailable, OSError) as exc:
        log.warning("neural voices skipped: %s", exc)
        return {}
    degrade = TrainingDegrader(bank)
    test_conditions = [c for c in EVAL_CONDITIONS if c.name != "clean"]
    out = {}
    for key, (split, items) in splits.items():
        name, clean = seeded(f"{split}{len(items)}", cfg.seed), waveforms[key]
        degraded = np.zeros(len(clean), bool)
        rng = np.random.default_rng([cfg.seed, 31, int(key == "neural test")])
        degraded[rng.permutation(len(clean))[: len(clean) // 2]] = True
        seed = lambda i: (cfg.seed + 31) * 1_000_003 + int(i)  # noqa: E731 (the RAVDESS sets' scheme, another offset)
        noisy = {int(i): (degrade(clean[i], seed(i)) if key == "neural train" else
                          test_conditions[j % len(test_conditions)].apply(bank, clean[i], seed(i)))
                 for j, i in enumerate(np.flatnonzero(degraded))}
        stats, texts = [], []
        for part, waves in (("", clean), ("_degraded", [noisy[i] for i in sorted(noisy)])):
            stats_path = cfg.cache / f"kokoro_{name}{part}_trim_stats.npy"
            if not stats_path.exists():
                np.save(stats_path, np.stack([encoder(w, FRONT_END)["trim"] for w in
                                              tqdm(waves, desc=f"SEC features: Kokoro {name}{part}", unit="line",
                                                   leave=False)]))
            stats.append(np.load(stats_path))
            texts.append(transcripts(cfg.cache, f"kokoro_{name}{part}_trimmed", asr,
                                     [trim_to_speech(w)[0] for w in waves]))
        merged_stats, merged_texts = stats[0].copy(), list(texts[0])
        for row, i in enumerate(sorted(noisy)):
            merged_stats[i], merged_texts[i] = stats[1][row], texts[1][row]
        out[key] = (merged_stats, merged_texts, items, degraded)
    return out

