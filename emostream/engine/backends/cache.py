"""Where compiled artefacts live, and the keys that say when they are stale.

An exported ONNX file is keyed by the SEC weights, torch and the opset; a TensorRT engine by that
ONNX file, the GPU, TensorRT's version, the shape profile and the precision. Change any of them
and a new artefact is built; old ones stay until the user deletes the cache directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def cache_dir(override: str | Path | None = None) -> Path:
    """``$EMOSTREAM_CACHE``, else ``$XDG_CACHE_HOME/emostream``, else ``~/.cache/emostream``."""
    if override:
        return Path(override)
    if os.environ.get("EMOSTREAM_CACHE"):
        return Path(os.environ["EMOSTREAM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emostream"


def model_hash(module: torch.nn.Module) -> str:
    """A digest of every parameter and buffer (names, shapes, values)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def exported_sec_onnx(sec_model, cache: str | Path | None = None) -> Path:
    """The SEC as ONNX in the cache, exported now if this model/torch/opset has none yet."""
    from emostream.engine.onnx_export import OPSET, export_sec_onnx

    key = f"sec-{model_hash(sec_model)}-torch{torch.__version__.split('+')[0]}-opset{OPSET}"
    path = cache_dir(cache) / "onnx" / f"{key}.onnx"
    if not path.exists():
        log.warning("exporting the SEC encoder to ONNX (once per model; cached in %s)", path.parent)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        export_sec_onnx(sec_model, tmp)
        os.replace(tmp, path)  # atomic: a half-written file never looks cached
    return path
