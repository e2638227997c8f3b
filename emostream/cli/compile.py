"""``emostream compile``: build and cache the SEC backend ahead of time, then check it against torch."""

from __future__ import annotations

import sys
import time

import numpy as np


def compile_backend(backend: str, model: str | None, cache: str | None, rebuild: bool, threads: int) -> int:
    import torch

    from emostream.cli.classify import sample_files
    from emostream.engine.backends import BackendUnavailable, make_sec_backend
    from emostream.engine.bundle import Bundle, BundleError
    from emostream.engine.recognizer import load_sec
    from emostream.streaming.audio import load_audio

    try:
        sec_model = load_sec(Bundle.load(model))
    except (BundleError, FileNotFoundError, RuntimeError) as exc:
        print(f"emostream compile: {exc}", file=sys.stderr)
        return 2
    print(f"compiling the SEC encoder for {backend}…", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        runner = make_sec_backend(backend, sec_model, threads=threads, cache_dir=cache, rebuild=rebuild)
    except BackendUnavailable as exc:
        print(f"emostream compile: {backend} is not available here: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as exc:
        print(f"emostream compile: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - t0
    worst = 0.0
    for path in sample_files():  # real speech: the shipped demo clips
        wave = load_audio(path)
        with torch.inference_mode():
            _, ref = sec_model(torch.from_numpy(wave)[None])
        _, got = runner(wave)
        p_ref = torch.softmax(ref[0], -1).numpy()
        p_got = torch.softmax(torch.from_numpy(np.asarray(got, np.float32)), -1).numpy()
        worst = max(worst, float(np.abs(p_ref - p_got).max()))
    info = runner.describe()
    print(f"{runner.name}: ready in {elapsed:.1f} s; " + ", ".join(f"{k}={v}" for k, v in info.items() if k != "backend"))
    print(f"largest probability difference vs torch on the demo clips: {worst:.2e}")
    return 0
