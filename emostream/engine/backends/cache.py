"""Where compiled artefacts live, and the keys that say when they are stale.

An exported ONNX file is keyed by the SEC weights, torch and the opset; a TensorRT engine by that
ONNX file, the GPU, TensorRT's version, the shape profile and the precision. Change any of them
and a new artefact is built; old ones stay until the user deletes the cache directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


# the code that defines the exported graph: a change here must not reuse an old export
_GRAPH_SOURCES = ("sec.py", "logmel.py", "whisper_encoder.py", "onnx_export.py")


def model_hash(module: torch.nn.Module) -> str:
    """A digest of every parameter and buffer (persistent or not, e.g. the mel filterbank) and of the
    source files that define the SEC graph."""
    h = hashlib.sha256()
    engine_dir = Path(__file__).resolve().parents[1]
    for name in _GRAPH_SOURCES:
        h.update((engine_dir / name).read_bytes())
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    for name, tensor in sorted(tensors.items()):
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


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (two `listen`s starting on a fresh cache build once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(path: Path, data: bytes) -> None:
    """Readers never see half a file: write aside, then rename."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """The metadata next to an artefact, or None if missing or unreadable (then treated as absent)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def exported_sec_onnx(sec_model, cache: str | Path | None = None) -> Path:
    """The SEC as ONNX in the cache, exported now if this model/code/torch/opset has none yet."""
    from emostream.engine.onnx_export import OPSET, export_sec_onnx

    key = f"sec-{model_hash(sec_model)}-torch{torch.__version__.split('+')[0]}-opset{OPSET}"
    path = cache_dir(cache) / "onnx" / f"{key}.onnx"
    if path.exists():
        return path
    with file_lock(path.with_name(path.name + ".lock")):
        if not path.exists():  # another process may have exported it while we waited
            log.warning("exporting the SEC encoder to ONNX (once per model; cached in %s)", path.parent)
            tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.onnx")
            export_sec_onnx(sec_model, tmp)
            os.replace(tmp, path)  # atomic: a half-written file never looks cached
    return path
