"""Frame-level Whisper states for the representation rows of the robustness study.

The probe needs only pooled statistics (``robust_data``); attentive pooling and the fine-tunes of
the top layers need the frames themselves. Per set: every clip trimmed to the segmenter's speech span
(the shipped front end), all encoder states as float16, ragged, plus the noise-gated speech mask,
stored as ``.npy`` files that are memory-mapped on load (11 sets: 6.6 GB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emostream.engine.sec import speech_frame_mask
from emostream.engine.training.augment import NoiseBank
from emostream.engine.training.robust_data import RobustSet, StatsEncoder, set_name
from emostream.engine.training.sec_train import LowStates

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class FrameSet:
    """Ragged frames of one set: ``states`` (total frames, states, dim) fp16, ``mask`` (total frames,)."""

    states: np.ndarray
    mask: np.ndarray
    offsets: np.ndarray  # (clips + 1,)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def clip(self, i: int, upto: int | None = None) -> LowStates:
        """Clip ``i`` as (states, frames, dim) + mask; ``upto``: keep states 0..upto only."""
        a, b = self.offsets[i], self.offsets[i + 1]
        states = torch.from_numpy(np.ascontiguousarray(self.states[a:b, :upto].transpose(1, 0, 2)))
        return LowStates(states, torch.from_numpy(self.mask[a:b].copy()))

    def clips(self, idx: np.ndarray, upto: int | None = None) -> list[LowStates]:
        return [self.clip(int(i), upto) for i in idx]


def frame_features(cache: Path, rset: RobustSet, bank: NoiseBank, clean: list[np.ndarray], encoder: StatsEncoder,
                   seed: int) -> FrameSet:
    """All encoder states of every clip of the set (trimmed, as inference sees them), cached."""
    folder = cache / f"frames_v{CACHE_VERSION}_{set_name(rset.name)}_{len(clean)}"
    if (folder / "offsets.npy").exists():
        return FrameSet(np.load(folder / "states.npy", mmap_mode="r"), np.load(folder / "mask.npy"),
                        np.load(folder / "offsets.npy"))
    states, masks = [], []
    with torch.inference_mode():
        for wave in tqdm(rset.waveforms(bank, clean, seed), desc=f"frames: {rset.name}", unit="clip", leave=False):
            mel = encoder.trimmed_mel(wave)
            s = encoder.encoder(mel)[:, 0]  # (states, frames, dim)
            states.append(s.transpose(0, 1).half().numpy())
            masks.append(speech_frame_mask(mel, s.shape[1], True)[0].numpy())
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in states])])
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "states.npy", np.concatenate(states))
    np.save(folder / "mask.npy", np.concatenate(masks))
    np.save(folder / "offsets.npy", offsets)  # written last: its presence marks a complete set
    return frame_features(cache, rset, bank, clean, encoder, seed)
