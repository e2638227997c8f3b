"""Export the SEC model (log-mel front end included) to ONNX (run by engine/backends)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

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
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on constant folding and sdpa's is_causal do not affect this graph (parity is tested)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), str(path), input_names=["waveform"], output_names=["embedding", "logits"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "embedding": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    log.info("exported SEC to %s", path)
    return path
