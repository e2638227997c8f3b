"""The reference backend: the PyTorch SEC module itself, eager, on CPU or CUDA."""

from __future__ import annotations

import copy

import numpy as np
import torch


class TorchSEC:
    def __init__(self, sec_model, threads: int | None = None, device: str = "cpu") -> None:
        if device == "cuda" and not torch.cuda.is_available():
            from emostream.engine.backends import BackendUnavailable

            raise BackendUnavailable("torch has no CUDA device (CPU build or no GPU)")
        if threads:
            torch.set_num_threads(threads)
        if device == "cuda":
            # FP32 convolutions: cuDNN's default TF32 in the log-mel DFT (a conv) moved probabilities by
            # 2.8e-3 on an H200 (1.4e-6 without). Process-wide, not per call: a context manager around
            # each call would race between the pipeline's threads; the SEC is our only cuDNN user.
            torch.backends.cudnn.allow_tf32 = False
        self.device = torch.device(device)
        # a copy on the GPU: the caller's model stays on the CPU for the other backends and references
        self.model = (copy.deepcopy(sec_model).to(self.device) if device != "cpu" else sec_model).eval()
        self.name = "torch" if device == "cpu" else "torch-cuda"

    def __call__(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))[None].to(self.device)
        with torch.inference_mode():
            emb, logits = self.model(x)
        return emb[0].float().cpu().numpy(), logits[0].float().cpu().numpy()

    def describe(self) -> dict:
        return {"backend": self.name, "device": str(self.device), "torch": torch.__version__,
                "threads": torch.get_num_threads()}
