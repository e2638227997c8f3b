"""Whisper's log-mel front end in torch, so it lives inside the exported SEC graph.

The STFT is a strided conv1d with a windowed DFT basis: it exports to ONNX/TensorRT as plain
convolution and matches faster-whisper's ``FeatureExtractor`` (the parity reference in tests).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80


def mel_filterbank(n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-scale mel filters as Whisper uses them (same values as faster-whisper)."""
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor.get_mel_filters(SAMPLE_RATE, N_FFT, n_mels=n_mels).astype(np.float32)


class LogMel(nn.Module):
    """waveform (batch, samples) float32 at 16 kHz -> log-mel (batch, n_mels, frames)."""

    def __init__(self, n_mels: int = N_MELS) -> None:
        super().__init__()
        window = np.hanning(N_FFT + 1)[:-1]
        n = np.arange(N_FFT)
        k = np.arange(N_FFT // 2 + 1)[:, None]
        angle = 2 * np.pi * k * n / N_FFT
        basis = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window], axis=0)
        self.register_buffer("dft", torch.from_numpy(basis.astype(np.float32)).unsqueeze(1), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(n_mels)), persistent=False)
        self.n_bins = N_FFT // 2 + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = F.pad(waveform, (0, HOP_LENGTH))  # faster-whisper pads one hop of zeros
        x = F.pad(x.unsqueeze(1), (N_FFT // 2, N_FFT // 2), mode="reflect")
        spec = F.conv1d(x, self.dft, stride=HOP_LENGTH)  # (batch, 2*bins, frames)
        real, imag = spec[:, : self.n_bins], spec[:, self.n_bins :]
        power = (real * real + imag * imag)[..., :-1]
        mel = torch.matmul(self.mel, power)
        log_spec = torch.log10(torch.clamp(mel, min=1e-10))
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - 8.0)
        return (log_spec + 4.0) / 4.0
