"""Export the SEC model (log-mel front end included) to ONNX and run it under ONNX Runtime."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from emostream.engine.sec import SECModel

log = logging.getLogger(__name__)

OPSET = 17


def export_sec_onnx(model: SECModel, path: str | Path, example_seconds: float = 3.0) -> Path:
    """Write ``path``: input ``waveform`` (batch, samples) float32 16 kHz -> ``embedding``, ``logits``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, int(16000 * example_seconds))
    example[0, 8000:40000] = 0.1 * torch.sin(torch.arange(32000) * 0.05)
    model.eval()
    with torch.no_grad():
        torch.onnx.export(
            model, (example,), str(path), input_names=["waveform"], output_names=["embedding", "logits"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "embedding": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    log.info("exported SEC to %s", path)
    return path


class OnnxSEC:
    """Same call shape as the torch SEC: waveform (samples,) -> (embedding, logits)."""

    def __init__(self, path: str | Path, threads: int = 1, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])

    def __call__(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        emb, logits = self.session.run(None, {"waveform": np.ascontiguousarray(waveform, dtype=np.float32)[None]})
        return emb[0], logits[0]
