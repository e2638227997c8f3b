"""SEC backends on a GPU machine: parity against torch FP32 on CPU and latency, in one run.

A lent GPU machine here has PyTorch (CUDA) and ONNX Runtime but no espeak-ng, no package index and
a 64 MiB limit on what travels, so the check is split in two:

  python tools/gpu_check.py pack .gpu        # here: speech rendered by espeak-ng (.npy), the
                                             # Whisper tiny.en encoder weights alone (~16 MB of 75)
                                             # and faster-whisper's mel filterbank
  python3 tools/gpu_check.py run .gpu --out $OUT/gpu_check.json   # there (PYTHONPATH=.)

``run`` tries every SEC backend (torch CPU, torch CUDA, ONNX Runtime CPU/CUDA, TensorRT), records
why one cannot start, checks each one's probabilities against torch FP32 on CPU with the tolerances
of tests/engine/test_backends.py, and times each on the same utterances (median / p95 / p99, ratio
against torch CPU with 2 threads in the same run). Exit status 1 if a backend that ran is out of
tolerance or a backend that is installed fails to start. Where espeak-ng and a GPU are both present, `pytest tests/engine/test_backends.py` and
`emostream bench` are the fuller checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# same bounds as tests/engine/test_backends.py (max |probability difference| vs torch FP32 on CPU)
TOLERANCE = {"torch-cpu-2t": 0.0, "torch-cpu-all": 1e-4, "torch-cuda": 1e-3, "onnxruntime": 1e-4,
             "onnxruntime-cuda": 1e-3, "tensorrt": 0.02}
TEST_SENTENCES = {
    "happy": "This is the best day of my life, I am so happy!",
    "sad": "I miss her so much, everything feels empty and sad.",
}


def pack(out: Path) -> None:
    from emostream.benchmarks.utterances import bench_utterances
    from emostream.engine.asr import bundled_asr_dir
    from emostream.engine.ct2_weights import read_ct2_variables, write_ct2_variables
    from emostream.engine.logmel import mel_filterbank
    from emostream.engine.training.speech_synth import Voice, speak

    (out / "speech").mkdir(parents=True, exist_ok=True)
    clips = {name: speak(text, Voice("en-us", 160, 50)) for name, text in TEST_SENTENCES.items()}
    clips.update({u.name: u.samples for u in bench_utterances(10)})
    for name, wave in clips.items():
        np.save(out / "speech" / f"{name}.npy", wave.astype(np.float32))
    np.save(out / "mel_filters.npy", mel_filterbank())
    (out / "tiny-en-encoder").mkdir(exist_ok=True)
    encoder = read_ct2_variables(bundled_asr_dir() / "model.bin", prefix="encoder/")
    write_ct2_variables(out / "tiny-en-encoder" / "model.bin", encoder)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"packed {len(clips)} clips and {len(encoder)} encoder variables in {out} ({size / 2**20:.1f} MiB)")


def _backends(sec_model, cache: Path) -> tuple[dict, dict]:
    import os

    from emostream.engine.backends import BackendUnavailable, make_sec_backend
    from emostream.engine.backends.torch_backend import TorchSEC

    build = {
        "torch-cpu-2t": lambda: (TorchSEC(sec_model, device="cpu"), 2),
        "torch-cpu-all": lambda: (TorchSEC(sec_model, device="cpu"), os.cpu_count()),
        "torch-cuda": lambda: (TorchSEC(sec_model, device="cuda"), 2),
        "onnxruntime": lambda: (make_sec_backend("onnxruntime", sec_model, threads=2, cache_dir=cache), 2),
        "onnxruntime-cuda": lambda: (make_sec_backend("onnxruntime-cuda", sec_model, threads=2, cache_dir=cache), 2),
        "tensorrt": lambda: (make_sec_backend("tensorrt", sec_model, cache_dir=cache), 2),
    }
    ready, skipped = {}, {}
    for name, make in build.items():
        try:
            t0 = time.perf_counter()
            backend, threads = make()
            ready[name] = (backend, threads, round(time.perf_counter() - t0, 2))
        except BackendUnavailable as exc:
            skipped[name] = str(exc)
        except Exception as exc:  # a failed build is a finding to report, not a crash of the check
            skipped[name] = f"failed: {type(exc).__name__}: {exc}"
    return ready, skipped


def run(packed: Path, warmup: int, repeats: int) -> dict:
    import torch

    from emostream.benchmarks.runner import ratio, summarize
    from emostream.engine.bundle import Bundle
    from emostream.engine.recognizer import load_sec

    try:
        import faster_whisper  # noqa: F401
    except ImportError:  # its import needs av and ctranslate2 (250 MB): its filterbank travels as data
        from emostream.engine import logmel

        filters = np.load(packed / "mel_filters.npy")

        def packed_filterbank(n_mels: int = logmel.N_MELS) -> np.ndarray:
            if n_mels != len(filters):
                raise ValueError(f"packed filterbank has {len(filters)} mels, not {n_mels}")
            return filters

        logmel.mel_filterbank = packed_filterbank
    clips = {p.stem: np.load(p) for p in sorted((packed / "speech").glob("*.npy"))}
    clips["short-0.15s"] = clips["happy"][:2400]
    clips["long-30s"] = np.resize(clips["happy"], 30 * 16000).astype(np.float32)
    sec_model = load_sec(Bundle.load(), asr_dir=packed / "tiny-en-encoder")
    torch.set_num_threads(2)
    with torch.inference_mode():
        reference = {k: torch.softmax(sec_model(torch.from_numpy(w)[None])[1][0], -1).numpy() for k, w in clips.items()}

    info = {"torch": torch.__version__, "cuda_gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        import onnxruntime

        info.update(onnxruntime=onnxruntime.__version__, ort_providers=onnxruntime.get_available_providers())
    except ImportError:
        info["onnxruntime"] = None
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except ImportError:
        info["tensorrt"] = None

    with tempfile.TemporaryDirectory() as cache:
        ready, skipped = _backends(sec_model, Path(cache))
        results: dict[str, dict] = {}
        for name, (backend, threads, start_s) in ready.items():
            torch.set_num_threads(threads)
            worst, worst_clip, times, long_times = 0.0, "", [], []
            for key, wave in clips.items():
                _, logits = backend(wave)
                p = torch.softmax(torch.from_numpy(np.asarray(logits, np.float32)), -1).numpy()
                if float(np.abs(p - reference[key]).max()) > worst:
                    worst, worst_clip = float(np.abs(p - reference[key]).max()), key
                for i in range(warmup + repeats):
                    if torch.cuda.is_available():
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    backend(wave)  # returns numpy: the GPU work is finished when it returns
                    if i >= warmup:
                        (long_times if key == "long-30s" else times).append((time.perf_counter() - t0) * 1e3)
            results[name] = {"threads": threads, "start_s": start_s, "describe": backend.describe(),
                             "max_prob_diff_vs_torch_cpu": worst, "worst_clip": worst_clip, "tolerance": TOLERANCE[name],
                             "parity_ok": worst <= TOLERANCE[name], "utterance_ms": summarize(times),
                             "long30s_ms": summarize(long_times)}
    base = results.get("torch-cpu-2t")
    for r in results.values():
        if base:
            r["ratio_vs_torch_cpu_2t"] = ratio(r["utterance_ms"], base["utterance_ms"])
            r["long30s_ratio_vs_torch_cpu_2t"] = ratio(r["long30s_ms"], base["long30s_ms"])
    lengths = [len(w) / 16000 for k, w in clips.items() if k != "long-30s"]
    return {"machine": info, "clips": {"count": len(lengths), "seconds_min": round(min(lengths), 2),
                                       "seconds_max": round(max(lengths), 2)},
            "warmup": warmup, "repeats": repeats, "gpu_peak_mb": (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                                                                  if torch.cuda.is_available() else None),
            "backends": results, "skipped": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="render speech and extract the encoder weights (needs espeak-ng)")
    p.add_argument("dir", type=Path)
    r = sub.add_parser("run", help="parity and latency of every SEC backend that starts here")
    r.add_argument("dir", type=Path)
    r.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    r.add_argument("--warmup", type=int, default=3)
    r.add_argument("--repeats", type=int, default=20, help="timed calls per clip (default %(default)s)")
    args = parser.parse_args()
    if args.cmd == "pack":
        pack(args.dir)
        return 0
    results = run(args.dir, args.warmup, args.repeats)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["machine"]))
    for name, why in results["skipped"].items():
        print(f"{name:17s} skipped: {why}")
    for name, r in results["backends"].items():
        u, lg = r["utterance_ms"], r["long30s_ms"]
        print(f"{name:17s} parity {'ok ' if r['parity_ok'] else 'BAD'} (max dp {r['max_prob_diff_vs_torch_cpu']:.2e}"
              f" <= {r['tolerance']:g})  utterance median {u['median']:.2f} p95 {u['p95']:.2f} ms"
              f" (x{r.get('ratio_vs_torch_cpu_2t', {}).get('median', float('nan')):.3f})"
              f"  30 s median {lg['median']:.2f} ms")
    failed = [name for name, why in results["skipped"].items() if why.startswith("failed:")]
    if failed:
        print(f"failed to start: {', '.join(failed)}")
    return 0 if all(r["parity_ok"] for r in results["backends"].values()) and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
