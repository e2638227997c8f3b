"""Sequence features for the fusion search: SEC frames and TEC tokens per utterance, cached.

The searched cell reads the frame-level speech sequence (last Whisper encoder layer, with the
speech-frame mask the SEC probe pools over) and the token-level text sequence (the fine-tuned
MiniLM over the ASR transcript; an empty transcript is a zero-length sequence). Computed once
with the shipped encoders and stored as fp16 in one .npz with offsets, so search epochs never
touch the encoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emostream.engine.sec import speech_frame_mask


@dataclass
class SequenceFeatures:
    speech: list[np.ndarray]  # (Ts, d) fp16
    speech_mask: list[np.ndarray]  # (Ts,) bool
    text: list[np.ndarray]  # (Tt, d) fp16, Tt may be 0
    asr_confidence: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int
    groups: np.ndarray  # (N,) str: e.g. "ravdess:07", "meld"

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, path: Path) -> None:
        def pack(parts):
            lengths = np.array([len(p) for p in parts], np.int64)
            flat = np.concatenate(parts) if lengths.sum() else np.zeros((0,) + parts[0].shape[1:], parts[0].dtype)
            return flat, lengths

        speech, s_len = pack(self.speech)
        mask, _ = pack(self.speech_mask)
        text, t_len = pack(self.text)
        np.savez(path, speech=speech, speech_len=s_len, speech_mask=mask, text=text, text_len=t_len,
                 asr_confidence=self.asr_confidence, labels=self.labels, groups=self.groups)

    @classmethod
    def load(cls, path: Path) -> SequenceFeatures:
        z = np.load(path, allow_pickle=False)

        def unpack(flat, lengths):
            return np.split(flat, np.cumsum(lengths)[:-1])

        return cls(unpack(z["speech"], z["speech_len"]), unpack(z["speech_mask"], z["speech_len"]),
                   unpack(z["text"], z["text_len"]), z["asr_confidence"], z["labels"], z["groups"])


def sequence_features(recognizer, waveforms: list[np.ndarray], transcripts: list[str], confidences: list[float],
                      labels: list[int], groups: list[str], desc: str = "sequence features") -> SequenceFeatures:
    """Run the shipped SEC encoder and fine-tuned text encoder over each utterance."""
    speech, masks, texts = [], [], []
    sec = recognizer.sec_model
    with torch.inference_mode():
        for wave, words in tqdm(list(zip(waveforms, transcripts)), desc=desc, unit="utt", leave=False):
            mel = sec.logmel(torch.from_numpy(np.asarray(wave, np.float32))[None])
            states = sec.encoder(mel)[-1]
            speech.append(states[0].numpy().astype(np.float16))
            masks.append(speech_frame_mask(mel, states.shape[1])[0].numpy())
            if words.strip():
                tokens, _ = recognizer.text_encoder(recognizer.text_encoder.tokenize([words]))
                texts.append(tokens[0].numpy().astype(np.float16))
            else:
                texts.append(np.zeros((0, recognizer.text_encoder.dim), np.float16))
    return SequenceFeatures(speech, masks, texts, np.asarray(confidences, np.float32), np.asarray(labels, np.int64),
                            np.asarray(groups))


def collate(features: SequenceFeatures, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Pad a batch: speech (B, Ts, d), speech_mask, text (B, Tt, d) (Tt may be 0), text_mask, conf, labels."""
    s = [features.speech[i] for i in idx]
    t = [features.text[i] for i in idx]
    ts, tt = max(len(x) for x in s), max(len(x) for x in t)
    d_s, d_t = s[0].shape[1], t[0].shape[1]
    speech = np.zeros((len(idx), ts, d_s), np.float32)
    s_mask = np.zeros((len(idx), ts), bool)
    text = np.zeros((len(idx), tt, d_t), np.float32)
    t_mask = np.zeros((len(idx), tt), bool)
    for b, i in enumerate(idx):
        speech[b, : len(s[b])] = s[b]
        s_mask[b, : len(s[b])] = features.speech_mask[i]
        text[b, : len(t[b])] = t[b]
        t_mask[b, : len(t[b])] = True
    return (torch.from_numpy(speech), torch.from_numpy(s_mask), torch.from_numpy(text), torch.from_numpy(t_mask),
            torch.from_numpy(features.asr_confidence[idx]), torch.from_numpy(features.labels[idx]))
