"""Per-stage CPU latency of ``classify`` on one 3 s utterance: median and p95 over repeated runs.

    python -m emostream.benchmarks.classify_latency --runs 30 --out runs/bench/classify_latency.json

Also times the SEC stage under ONNX Runtime against torch eager in the same run (ratio reported).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from emostream.engine.asr import ASRConfig
from emostream.engine.onnx_export import OnnxSEC, export_sec_onnx
from emostream.engine.recognizer import Recognizer
from emostream.engine.training.speech_synth import Voice, speak

TEXT = "I really did not expect to see you here today."


def three_second_clip() -> np.ndarray:
    wave = speak(TEXT, Voice("en-us", 190, 50))
    out = np.zeros(48000, np.float32)
    out[: min(48000, wave.size)] = wave[:48000]
    return out


def summarize(values: list[float]) -> dict[str, float]:
    a = np.array(values)
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)), "min_ms": float(a.min()), "n": len(a)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/classify_latency.json"))
    args = parser.parse_args(argv)

    rec = Recognizer(asr=ASRConfig(cpu_threads=args.threads), torch_threads=args.threads)
    clip = three_second_clip()
    stages: dict[str, list[float]] = {"sec": [], "asr": [], "text": [], "fusion": [], "total": []}
    for i in range(args.warmup + args.runs):
        t = time.perf_counter()
        r = rec.classify(clip)
        total = (time.perf_counter() - t) * 1e3
        if i >= args.warmup:
            for k, v in r.timings_ms.items():
                stages[k].append(v)
            stages["total"].append(total)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = OnnxSEC(export_sec_onnx(rec.sec_model, Path(tmp) / "sec.onnx"), threads=args.threads)
        onnx_times, torch_times = [], []
        for i in range(args.warmup + args.runs):
            t = time.perf_counter()
            onnx(clip)
            t1 = time.perf_counter()
            rec.sec(clip)
            t2 = time.perf_counter()
            if i >= args.warmup:
                onnx_times.append((t1 - t) * 1e3)
                torch_times.append((t2 - t1) * 1e3)
    result = {
        "utterance_s": 3.0, "transcript": r.transcript, "runs": args.runs, "warmup": args.warmup,
        "threads": args.threads, "machine": {"cpu_count": torch.get_num_threads(), "platform": platform.platform(),
                                             "torch": torch.__version__},
        "stages": {k: summarize(v) for k, v in stages.items()},
        "sec_backends": {"torch": summarize(torch_times), "onnxruntime": summarize(onnx_times),
                         "onnx_over_torch_median": float(np.median(onnx_times) / np.median(torch_times))},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result["stages"].items():
        print(f"{k:7s} median {v['median_ms']:8.1f} ms   p95 {v['p95_ms']:8.1f} ms")
    b = result["sec_backends"]
    print(f"SEC torch {b['torch']['median_ms']:.1f} ms, ONNX Runtime {b['onnxruntime']['median_ms']:.1f} ms "
          f"(ratio {b['onnx_over_torch_median']:.2f})")
    return result


if __name__ == "__main__":
    main()
