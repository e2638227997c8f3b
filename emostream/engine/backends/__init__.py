"""Inference backends for the SEC encoder behind one call: ``backend(waveform) -> (embedding, logits)``.

``make_sec_backend("auto", ...)`` picks TensorRT > ONNX Runtime CUDA > ONNX Runtime CPU > torch,
skipping what is not installed or has no GPU, and logs what it chose and why. Every backend takes
a 16 kHz mono float32 waveform of any length (0.1-30 s) and returns numpy arrays.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime-cuda", "onnxruntime", "torch")


class BackendUnavailable(RuntimeError):
    """The asked-for backend cannot run here; the message says what is missing."""


class SECBackend(Protocol):
    name: str

    def __call__(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def describe(self) -> dict: ...


def _torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def make_sec_backend(choice: str, sec_model, threads: int = 1, cache_dir=None, rebuild: bool = False) -> SECBackend:
    """Build the named backend, or with "auto" the fastest that works here. A backend asked for by
    name fails loudly; "auto" logs each failure and moves on. ``rebuild``: TensorRT ignores its cache."""
    if choice not in BACKENDS:
        raise ValueError(f"unknown SEC backend {choice!r}; choose from {', '.join(BACKENDS)}")
    from emostream.engine.backends.onnxruntime_backend import OrtSEC
    from emostream.engine.backends.tensorrt_backend import TensorRTSEC
    from emostream.engine.backends.torch_backend import TorchSEC

    build = {
        "tensorrt": lambda: TensorRTSEC.from_model(sec_model, cache_dir=cache_dir, rebuild=rebuild),
        "onnxruntime-cuda": lambda: OrtSEC.from_model(sec_model, threads=threads, device="cuda", cache_dir=cache_dir),
        "onnxruntime": lambda: OrtSEC.from_model(sec_model, threads=threads, device="cpu", cache_dir=cache_dir),
        "torch": lambda: TorchSEC(sec_model, threads=threads, device="cuda" if _torch_cuda() else "cpu"),
    }
    if choice != "auto":
        backend = build[choice]()
        log.info("SEC backend: %s (asked for)", backend.name)
        return backend
    reasons = []
    for name in ("tensorrt", "onnxruntime-cuda", "onnxruntime", "torch"):
        try:
            backend = build[name]()
        except BackendUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            continue
        except Exception as exc:  # a failed build, an unwritable cache, a corrupt artefact: try the next one
            log.warning("SEC backend %s failed, trying the next: %s", name, exc)
            reasons.append(f"{name}: failed ({type(exc).__name__}: {exc})")
            continue
        log.info("SEC backend: %s (auto%s)", backend.name, "; skipped " + "; ".join(reasons) if reasons else "")
        return backend
    raise BackendUnavailable("no SEC backend could start: " + "; ".join(reasons))
