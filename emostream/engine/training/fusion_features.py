"""Sequence features for the fusion search: SEC frames and TEC tokens per utterance, cached.

The searched cell reads the frame-level speech sequence (last Whisper encoder layer, with the
speech-frame mask the SEC probe pools over) and the token-level text sequence (the fine-tuned
MiniLM over the ASR transcript; an empty transcript is a zero-length sequence). The same pass
keeps what the branches themselves need: the raw per-layer speech statistics the SEC probe is
fitted on (so every fold fits its own probe without touching audio again) and the TEC pooled
embedding and logits. Computed once with the shipped encoders and stored in one .npz with
offsets, so search epochs never touch the encoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emostream.engine.sec import layer_stats, speech_frame_mask


@dataclass
class SequenceFeatures:
    speech: list[np.ndarray]  # (Ts, d) fp16
    speech_mask: list[np.ndarray]  # (Ts,) bool
    text: list[np.ndarray]  # (Tt, d) fp16, Tt may be 0
    asr_confidence: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int
    groups: np.ndarray  # (N,) str: e.g. "ravdess:07", "meld"
    sec_stats: np.ndarray | None = None  # (N, layers*2*d) raw mean+std per encoder layer (the probe's input)
    text_emb: np.ndarray | None = None  # (N, d) TEC pooled embedding (zeros without a transcript)
    text_logits: np.ndarray | None = None  # (N, labels) TEC head logits (zeros without a transcript)
    tags: np.ndarray | None = None  # (N,) str: how the audio was made, e.g. "voice=en-us+m3;degraded=1"

    OPTIONAL = ("sec_stats", "text_emb", "text_logits", "tags")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def has_text(self) -> np.ndarray:
        """(N,) bool: the utterance has a transcript (a non-empty token sequence)."""
        return np.array([len(t) > 0 for t in self.text])

    def save(self, path: Path) -> None:
        def pack(parts):
            lengths = np.array([len(p) for p in parts], np.int64)
            flat = np.concatenate(parts) if lengths.sum() else np.zeros((0,) + parts[0].shape[1:], parts[0].dtype)
            return flat, lengths

        speech, s_len = pack(self.speech)
        mask, _ = pack(self.speech_mask)
        text, t_len = pack(self.text)
        extra = {k: getattr(self, k) for k in self.OPTIONAL if getattr(self, k) is not None}
        np.savez(path, speech=speech, speech_len=s_len, speech_mask=mask, text=text, text_len=t_len,
                 asr_confidence=self.asr_confidence, labels=self.labels, groups=self.groups, **extra)

    @classmethod
    def load(cls, path: Path) -> SequenceFeatures:
        z = np.load(path, allow_pickle=False)

        def unpack(flat, lengths):
            return np.split(flat, np.cumsum(lengths)[:-1])

        return cls(unpack(z["speech"], z["speech_len"]), unpack(z["speech_mask"], z["speech_len"]),
                   unpack(z["text"], z["text_len"]), z["asr_confidence"], z["labels"], z["groups"],
                   **{k: z[k] for k in cls.OPTIONAL if k in z.files})


def sequence_features(recognizer, waveforms: list[np.ndarray], transcripts: list[str], confidences: list[float],
                      labels: list[int], groups: list[str], desc: str = "sequence features",
                      tags: list[str] | None = None) -> SequenceFeatures:
    """Run the shipped SEC encoder and fine-tuned text encoder (and its head) over each utterance."""
    speech, masks, texts, stats = [], [], [], []
    dim, n_labels = recognizer.text_encoder.dim, recognizer.text_head.classify.out_features
    text_emb = np.zeros((len(waveforms), dim), np.float32)
    text_logits = np.zeros((len(waveforms), n_labels), np.float32)
    sec = recognizer.sec_model
    with torch.inference_mode():
        for i, (wave, words) in enumerate(tqdm(list(zip(waveforms, transcripts)), desc=desc, unit="utt", leave=False)):
            mel = sec.logmel(torch.from_numpy(np.asarray(wave, np.float32))[None])
            states = sec.encoder(mel)
            frame_mask = speech_frame_mask(mel, states.shape[2])
            speech.append(states[-1][0].numpy().astype(np.float16))
            masks.append(frame_mask[0].numpy())
            stats.append(layer_stats(states, frame_mask)[0].numpy())
            if words.strip():
                tokens, emb = recognizer.text_encoder(recognizer.text_encoder.tokenize([words]))
                texts.append(tokens[0].numpy().astype(np.float16))
                text_emb[i], text_logits[i] = emb[0].numpy(), recognizer.text_head(emb)[0].numpy()
            else:
                texts.append(np.zeros((0, dim), np.float16))
    return SequenceFeatures(speech, masks, texts, np.asarray(confidences, np.float32), np.asarray(labels, np.int64),
                            np.asarray(groups), np.stack(stats).astype(np.float32), text_emb, text_logits,
                            None if tags is None else np.asarray(tags))


def collate(features: SequenceFeatures, idx: np.ndarray, sec_logits: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Pad a batch: speech (B, Ts, d), speech_mask, text (B, Tt, d) (Tt may be 0), text_mask, conf,
    SEC logits (per fold: ``sec_logits`` is indexed like ``features``), TEC logits, labels."""
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
            torch.from_numpy(features.asr_confidence[idx]), torch.from_numpy(sec_logits[idx].astype(np.float32)),
            torch.from_numpy(features.text_logits[idx].astype(np.float32)), torch.from_numpy(features.labels[idx]))
