"""Per-condition SEC features for the robustness study: every RAVDESS clip under each evaluation
condition and each training copy, through several speech front ends, cached per set.

Front ends (all frozen Whisper tiny.en, per-layer mean+std over the speech mask):
- ``raw``: the whole file, peak-relative mask (what ``classify`` did before trimming);
- ``trim_peak``: trimmed by the segmenter's speech span, peak-relative mask;
- ``trim``: trimmed, peak- and noise-floor-relative mask (the shipped front end);
- ``trim_cmn``: as ``trim`` on log-mel with the utterance's per-band mean removed (channel normalisation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emostream.engine.logmel import LogMel
from emostream.engine.sec import layer_stats, speech_frame_mask
from emostream.engine.training.augment import Condition, NoiseBank, TrainingDegrader
from emostream.engine.whisper_encoder import WhisperEncoderStack
from emostream.streaming.segmenter import segment_all, span_of, trim_to_speech

log = logging.getLogger(__name__)

FRONT_ENDS = ("raw", "trim_peak", "trim", "trim_cmn")
CACHE_VERSION = 2


def cmn(mel: torch.Tensor) -> torch.Tensor:
    """Remove each mel band's mean over the utterance (a fixed EQ / microphone colour), keep the level."""
    return mel - mel.mean(dim=-1, keepdim=True) + mel.mean(dim=(-1, -2), keepdim=True)


class StatsEncoder:
    """Waveform -> per-layer stats (states * 2 * d,) for the requested front ends, sharing encoder runs."""

    def __init__(self, asr_dir: str) -> None:
        self.logmel = LogMel()
        self.encoder = WhisperEncoderStack.from_ct2(asr_dir).eval()

    def stats(self, mel: torch.Tensor, gates: dict[str, bool], out: dict[str, np.ndarray]) -> None:
        """One encoder run; stats under each named mask (noise gate on or off)."""
        states = self.encoder(mel)
        for name, gate in gates.items():
            mask = speech_frame_mask(mel, states.shape[2], gate)
            out[name] = layer_stats(states, mask)[0].numpy()

    def trimmed_mel(self, wave: np.ndarray) -> torch.Tensor:
        """(1, 80, T) log-mel of the segmenter's speech span: what ``classify`` and training judge."""
        return self.logmel(torch.from_numpy(np.ascontiguousarray(trim_to_speech(wave)[0]))[None])

    def __call__(self, wave: np.ndarray, front_ends: tuple[str, ...]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            if "raw" in front_ends:
                self.stats(self.logmel(torch.from_numpy(wave)[None]), {"raw": False}, out)
            mel = self.trimmed_mel(wave)
            gates = {name: name == "trim" for name in ("trim_peak", "trim") if name in front_ends}
            if gates:
                self.stats(mel, gates, out)
            if "trim_cmn" in front_ends:
                self.stats(cmn(mel), {"trim_cmn": True}, out)
        return out


def listen_features(cache: Path, rset: "RobustSet", bank: NoiseBank, clean: list[np.ndarray], encoder: StatsEncoder,
                    seed: int) -> dict[str, np.ndarray]:
    """``trim`` stats of each clip's last ``listen`` utterance (NaN rows where listen publishes nothing)
    and the share of clips whose last utterance is exactly ``classify``'s span."""
    path = cache / f"listen_v{CACHE_VERSION}_{set_name(rset.name)}_{len(clean)}.npz"
    if path.exists():
        return dict(np.load(path))
    rows, same = [], []
    for wave in tqdm(rset.waveforms(bank, clean, seed), desc=f"listen features: {rset.name}", unit="clip", leave=False):
        # what listen judges last: the final utterance (the whole turn when a sentence was cut at a pause)
        utterances = segment_all(wave)
        utt, span = (utterances[-1].samples if utterances else None), span_of(utterances)
        same.append(utt is not None and span is not None and len(utt) == span[1] - span[0]
                    and np.array_equal(utt, wave[span[0]:span[1]]))
        if utt is None:
            rows.append(None)
            continue
        out: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            encoder.stats(encoder.logmel(torch.from_numpy(np.ascontiguousarray(utt))[None]), {"trim": True}, out)
        rows.append(out["trim"])
    dim = next(r for r in rows if r is not None).shape[0]
    stats = np.stack([np.full(dim, np.nan, np.float32) if r is None else r for r in rows]).astype(np.float32)
    result = {"trim": stats, "same_as_classify": np.array(same)}
    np.savez(path, **result)
    return result


@dataclass(frozen=True)
class RobustSet:
    """One set of degraded copies: an evaluation condition, or training copy ``k`` (``condition`` None)."""

    name: str
    condition: Condition | None = None
    copy: int = 0

    def waveforms(self, bank: NoiseBank, clean: list[np.ndarray], seed: int) -> list[np.ndarray]:
        if self.condition is not None:
            return [self.condition.apply(bank, w, seed * 1_000_003 + i) for i, w in enumerate(clean)]
        degrade = TrainingDegrader(bank)
        return [degrade(w, (seed + 17 * self.copy) * 1_000_003 + i) for i, w in enumerate(clean)]


def set_name(name: str) -> str:
    """A set's name as a cache file name."""
    return name.replace(" ", "_").replace("+", "and")


def seeded(name: str, seed: int) -> str:
    """A cache name for data drawn with ``seed`` (seed 0 keeps the plain name)."""
    return name if seed == 0 else f"{name}_s{seed}"


def set_features(cache: Path, rset: RobustSet, bank: NoiseBank, clean: list[np.ndarray], encoder: StatsEncoder,
                 front_ends: tuple[str, ...], seed: int) -> dict[str, np.ndarray]:
    """Stats per front end for every clip of the set, cached in ``cache/robust_<name>.npz``."""
    name = f"robust_v{CACHE_VERSION}_{set_name(rset.name)}_{len(clean)}"
    path = cache / f"{name if rset.name == 'clean' else seeded(name, seed)}.npz"  # clean audio has no seed
    if path.exists():
        z = np.load(path)
        if all(f in z.files for f in front_ends):
            return {f: z[f] for f in front_ends}
    waves = rset.waveforms(bank, clean, seed)
    rows = [encoder(w, front_ends) for w in tqdm(waves, desc=f"SEC features: {rset.name}", unit="clip", leave=False)]
    out = {f: np.stack([r[f] for r in rows]).astype(np.float32) for f in front_ends}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out
