"""The SEC as a native TensorRT engine: ONNX -> engine with a dynamic-length profile, FP16 where the
probabilities stay within tolerance, serialized and cached on disk.

Build once (``emostream compile``), then every start deserializes the cached engine. The cache key
covers the ONNX file (hence the weights), the GPU model and compute capability, the TensorRT
version, the shape profile and the precision, so a change in any of them builds a new engine.
I/O buffers are torch CUDA tensors (TensorRT runs on torch's current stream).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emostream.engine.backends import BackendUnavailable

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class TensorRTProfile:
    """Waveform lengths (samples) the engine accepts; TensorRT tunes kernels for ``opt``."""

    min_samples: int = int(0.1 * SAMPLE_RATE)
    opt_samples: int = 4 * SAMPLE_RATE
    max_samples: int = 2 * 1500 * 160 - 1  # sec.MAX_SAMPLES: longer input is cut by the model anyway
    fp16: bool = True
    fp16_tolerance: float = 0.02  # max |p_fp16 - p_fp32| over the check clips; above it: FP32
    workspace_mb: int = 1024


def _trt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable("TensorRT is not installed (pip install 'emostream[tensorrt]')") from exc
    return trt


def _cuda_torch():
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("no CUDA GPU visible to torch (TensorRT needs an NVIDIA GPU and a CUDA build of torch)")
    return torch


def engine_key(onnx_path: Path, profile: TensorRTProfile, fp16: bool) -> str:
    from emostream.engine.backends.cache import file_hash

    trt, torch = _trt(), _cuda_torch()
    props = torch.cuda.get_device_properties(0)
    gpu = f"{props.name}-sm{props.major}{props.minor}".replace(" ", "_")
    shape = f"{profile.min_samples}-{profile.opt_samples}-{profile.max_samples}"
    return f"{file_hash(onnx_path)}-{gpu}-trt{trt.__version__}-{shape}-{'fp16' if fp16 else 'fp32'}"


def build_engine(onnx_path: Path, profile: TensorRTProfile, fp16: bool) -> bytes:
    """Parse the ONNX file and build a serialized engine (minutes for a big model; seconds here)."""
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, profile.workspace_mb << 20)
    if not fp16:  # the FP32 fallback exists for accuracy: no TF32 either (on by default in TensorRT)
        config.clear_flag(trt.BuilderFlag.TF32)
    if fp16:
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; building FP32")
        else:
            config.set_flag(trt.BuilderFlag.FP16)
    shapes = builder.create_optimization_profile()
    shapes.set_shape("waveform", (1, profile.min_samples), (1, profile.opt_samples), (1, profile.max_samples))
    config.add_optimization_profile(shapes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the SEC engine (see the TensorRT log above)")
    return bytes(serialized)


class TensorRTSEC:
    def __init__(self, engine_bytes: bytes, description: dict) -> None:
        trt, torch = _trt(), _cuda_torch()
        self._torch = torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialize the cached engine (delete it to rebuild)")
        self.context = self.engine.create_execution_context()
        self.device = torch.device("cuda", 0)
        self.stream = torch.cuda.Stream(self.device)  # our own: TensorRT warns on (and syncs) the default one
        self.name = "tensorrt"
        self._description = description
        self._lock = threading.Lock()  # one execution context: one inference at a time

    @classmethod
    def from_model(cls, sec_model, cache_dir=None, profile: TensorRTProfile | None = None,
                   rebuild: bool = False) -> TensorRTSEC:
        """Load the cached engine for this model/GPU/TensorRT/profile, building it if missing.
        FP16 is tried first; if it moves probabilities by more than the tolerance, that is recorded
        (so it is not retried every start) and FP32 is used."""
        from emostream.engine.backends.cache import cache_dir as resolve_cache
        from emostream.engine.backends.cache import exported_sec_onnx, file_lock, read_json, write_atomic

        _trt(), _cuda_torch()  # fail early with the reason before exporting anything
        profile = profile or TensorRTProfile()
        onnx_path = exported_sec_onnx(sec_model, cache_dir)
        root = resolve_cache(cache_dir) / "tensorrt"
        root.mkdir(parents=True, exist_ok=True)
        for fp16 in ([True, False] if profile.fp16 else [False]):
            key = engine_key(onnx_path, profile, fp16)
            path = root / f"sec-{key}.engine"
            meta_path = root / f"sec-{key}.json"
            with file_lock(root / f"sec-{key}.lock"):  # one builder per key across processes
                meta = read_json(meta_path) or {}
                if meta.get("rejected") and not rebuild:
                    continue  # FP16 was built for this key before and failed the accuracy check
                if path.exists() and not rebuild:
                    return cls(path.read_bytes(), {**meta, "engine": str(path), "cached": True})
                log.warning("building the TensorRT SEC engine (%s) — once per model, GPU and TensorRT version",
                            "FP16" if fp16 else "FP32")
                t0 = time.perf_counter()
                data = build_engine(onnx_path, profile, fp16)
                built_s = time.perf_counter() - t0
                meta = {"key": key, "precision": "fp16" if fp16 else "fp32", "profile": asdict(profile),
                        "build_s": round(built_s, 1)}
                backend = cls(data, meta)
                if fp16:
                    err = backend.max_prob_error(sec_model)
                    meta["max_prob_error_vs_torch"] = err
                    if err > profile.fp16_tolerance:
                        log.warning("FP16 engine moves probabilities by %.3f (> %.3f): using FP32", err,
                                    profile.fp16_tolerance)
                        write_atomic(meta_path, json.dumps({**meta, "rejected": True}).encode())
                        continue
                write_atomic(path, data)
                write_atomic(meta_path, json.dumps(meta, indent=2).encode())
            log.info("TensorRT engine cached at %s (%.1f s to build)", path, built_s)
            backend._description = {**meta, "engine": str(path), "cached": False}
            return backend
        raise RuntimeError("no TensorRT engine could be built")

    def max_prob_error(self, sec_model, seconds: tuple[float, ...] = (0.5, 2.0, 7.0)) -> float:
        """Largest probability difference against torch FP32 on test tones with speech-like envelopes."""
        import torch

        rng = np.random.default_rng(0)
        worst = 0.0
        model = sec_model.eval()  # the reference stays where the caller keeps it (CPU)
        for s in seconds:
            n = int(s * SAMPLE_RATE)
            t = np.arange(n) / SAMPLE_RATE
            x = (0.2 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
                 + 0.01 * rng.standard_normal(n)).astype(np.float32)
            with torch.inference_mode():
                _, ref = model(torch.from_numpy(x)[None].to(next(model.parameters()).device))
                ref = ref.float().cpu()
            _, got = self(x)
            p_ref = torch.softmax(ref[0], -1).numpy()
            p_got = torch.softmax(torch.from_numpy(got), -1).numpy()
            worst = max(worst, float(np.abs(p_ref - p_got).max()))
        return worst

    def __call__(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        samples = np.ascontiguousarray(waveform, dtype=np.float32)[: TensorRTProfile.max_samples]
        with self._lock, torch.cuda.stream(self.stream):
            x = torch.from_numpy(samples)[None].to(self.device, non_blocking=False)
            if not self.context.set_input_shape("waveform", tuple(x.shape)):
                raise RuntimeError(f"waveform of {x.shape[1]} samples is outside the engine's profile "
                                   f"({TensorRTProfile.min_samples}-{TensorRTProfile.max_samples})")
            self.context.set_tensor_address("waveform", x.data_ptr())
            outputs = {}
            for name in ("embedding", "logits"):
                shape = tuple(self.context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=torch.float32, device=self.device)
                self.context.set_tensor_address(name, out.data_ptr())
                outputs[name] = out
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            self.stream.synchronize()
        return outputs["embedding"][0].cpu().numpy(), outputs["logits"][0].cpu().numpy()

    def describe(self) -> dict:
        trt = _trt()
        return {"backend": self.name, "tensorrt": trt.__version__,
                "gpu": self._torch.cuda.get_device_name(0), **self._description}
