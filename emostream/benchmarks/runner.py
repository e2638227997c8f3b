"""What every benchmark shares: timing with warm-up, summaries, machine facts, memory."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def summarize(values_ms: list[float]) -> dict[str, float]:
    """Median, p95, p99, mean and count of latencies in ms (the figures every report quotes)."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"median": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2),
            "mean": round(float(a.mean()), 2), "min": round(float(a.min()), 2), "n": int(a.size)}


def time_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1e3, out


def repeat_ms(fn: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    """Call ``fn`` warmup + repeats times; the warm-up calls are not recorded."""
    for _ in range(warmup):
        fn()
    return [time_ms(fn)[0] for _ in range(repeats)]


def ratio(a: dict[str, float], b: dict[str, float], keys=("median", "p95")) -> dict[str, float]:
    return {k: round(a[k] / b[k], 3) for k in keys if k in a and k in b and b[k]}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def gpu_memory_mb() -> float | None:
    try:
        import torch

        if torch.cuda.is_available():
            return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception:
        pass
    return None


def machine_info() -> dict[str, Any]:
    import ctranslate2
    import onnxruntime
    import torch

    info: dict[str, Any] = {
        "cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
        "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        "ctranslate2": ctranslate2.__version__, "cuda_gpu": None,
    }
    if torch.cuda.is_available():
        info["cuda_gpu"] = torch.cuda.get_device_name(0)
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except ImportError:
        info["tensorrt"] = None
    return info
