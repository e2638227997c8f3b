"""End-to-end latency of the live pipeline on a real-time-paced recording of spoken sentences.

    python -m emostream.benchmarks.live_latency --out runs/bench/live_latency.json

The recording (espeak-ng, 12 sentences, 1 s pauses, alternating voices) is played into the
pipeline at real-time pace, exactly as `emostream listen --input FILE` does, with the same
threads and models. Reported per utterance and as median / p95: ``vad_close_to_publish`` (the
VAD closing the utterance -> its message leaving the ZeroMQ socket) and each stage; and how much
of the SEC branch ran while ASR was running (the concurrency the pipeline is built for).
Writes JSON and a PNG timeline of the stages per utterance.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SENTENCES = (
    "Good morning, I finally got the job I wanted.",
    "Why would you say something so cruel to me?",
    "I am not sure what to think about all this.",
    "Please, please tell me everything will be fine.",
    "That is the funniest thing I have heard all week.",
    "Get out of my office right now.",
    "I lost my keys again, and the bus already left.",
    "Wow, I did not expect a party for my birthday!",
    "The meeting has been moved to Thursday afternoon.",
    "Something is moving in the dark, I am scared.",
    "This food smells rotten, I cannot eat it.",
    "We won the match, we actually won!",
)


class _Collect:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def emit(self, topic: str, message: dict) -> None:
        self.messages.append(message)

    def close(self) -> None:
        pass


def _free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(a)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "max": round(float(a.max()), 1), "n": int(a.size)}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    for i, r in enumerate(rows):
        t = r["timings_ms"]
        y = len(rows) - i
        start = t["queue_wait"]
        ax.barh(y + 0.18, t["asr"], left=start, height=0.32, color="#4C72B0", label="ASR" if i == 0 else None)
        ax.barh(y + 0.18, t["text"], left=start + t["asr"], height=0.32, color="#55A868",
                label="text encoder" if i == 0 else None)
        ax.barh(y - 0.18, t["sec"], left=start, height=0.32, color="#DD8452", label="SEC" if i == 0 else None)
        ax.barh(y, t["fusion"], left=start + t["branches"], height=0.7, color="k", label="fusion" if i == 0 else None)
        ax.plot([t["vad_close_to_publish"]], [y], "|", color="crimson", ms=14,
                label="published" if i == 0 else None)
    ax.set_yticks([len(rows) - i for i in range(len(rows))], [f"#{r['seq']} ({r['duration_s']:.1f} s)" for r in rows])
    ax.set_xlabel("ms after the VAD closed the utterance")
    ax.set_title("Live pipeline, real-time paced: SEC runs while ASR runs")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                        help="CPU threads, split as `emostream listen` does (ASR: all, torch: half)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of silence between sentences")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/live_latency.json"))
    args = parser.parse_args(argv)

    from emostream.clients.listen import warm_up
    from emostream.clients.publisher import Publisher
    from emostream.engine.asr import ASRConfig
    from emostream.engine.recognizer import Recognizer
    from emostream.engine.training.speech_synth import spoken_dialogue
    from emostream.streaming.pipeline import Pipeline, PipelineConfig
    from emostream.streaming.sources import FileSource

    audio, spans = spoken_dialogue(SENTENCES, pause_s=args.pause)
    recognizer = Recognizer(asr=ASRConfig(cpu_threads=args.threads), torch_threads=max(1, args.threads // 2))
    warm_up(recognizer)

    def run(concurrent: bool) -> tuple[list[dict], dict, float]:
        sink = _Collect()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "dialogue.wav"
            sf.write(path, audio, 16000)
            pipeline = Pipeline(recognizer, [FileSource(path, "bench", realtime=True)], [sink],
                                PipelineConfig(concurrent_branches=concurrent), publisher=Publisher(_free_endpoint()))
            t0 = time.monotonic()
            worker = threading.Thread(target=pipeline.run)
            worker.start()
            worker.join()
            wall = time.monotonic() - t0
        rows = [{"seq": m["seq"], "duration_s": m["utterance"]["duration_s"], "transcript": m["transcript"],
                 "label": m["label"], "timings_ms": m["timings_ms"]} for m in sink.messages if m["type"] == "emotion"]
        final = [m for m in sink.messages if m["type"] == "status"][-1]
        return rows, final, wall

    report = {
        "benchmark": "live_latency",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": {"threads": args.threads, "sentences": len(SENTENCES), "pause_s": args.pause,
                   "audio_s": round(len(audio) / 16000, 2), "realtime": True, "max_pending": 4,
                   "order": "concurrent then sequential, same models, same recording"},
    }
    for mode, concurrent in (("concurrent", True), ("sequential", False)):
        rows, final, wall = run(concurrent)
        t = {k: [r["timings_ms"][k] for r in rows] for k in rows[0]["timings_ms"]}
        sec_total, overlap_total = sum(t["sec"]), sum(t["sec_asr_overlap"])
        report[mode] = {
            "wall_s": round(wall, 2),
            "utterances": {"spoken": len(SENTENCES), **{k: final["streams"]["bench"][k] for k in
                                                       ("utterances", "published", "dropped", "failed")}},
            "latency_ms": {k: _stats(v) for k, v in t.items()},
            "sec_asr_overlap_share_of_sec": round(overlap_total / sec_total, 4) if sec_total else None,
            "sec_asr_overlap_share_of_branches": round(overlap_total / sum(t["branches"]), 4),
            "rows": rows,
        }
    c, q = report["concurrent"]["latency_ms"], report["sequential"]["latency_ms"]
    report["ratio_concurrent_over_sequential"] = {
        k: round(c["vad_close_to_publish"][k] / q["vad_close_to_publish"][k], 3) for k in ("median", "p95")}
    rows = report["concurrent"]["rows"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    plot(rows, args.out.with_suffix(".png"))
    for mode in ("concurrent", "sequential"):
        r = report[mode]
        lat = r["latency_ms"]["vad_close_to_publish"]
        print(f"{mode:10s} {r['utterances']['published']}/{len(SENTENCES)} utterances; VAD close -> publish median "
              f"{lat['median']:.0f} ms, p95 {lat['p95']:.0f} ms; SEC overlapped ASR for "
              f"{100 * r['sec_asr_overlap_share_of_sec']:.1f}% of SEC time "
              f"({100 * r['sec_asr_overlap_share_of_branches']:.1f}% of the branches' wall time)")
        print("           " + "  ".join(f"{k} {r['latency_ms'][k]['median']:.1f}/{r['latency_ms'][k]['p95']:.1f}"
                                        for k in ("queue_wait", "sec", "asr", "text", "fusion", "branches"))
              + " ms (median/p95)")
    ratio = report["ratio_concurrent_over_sequential"]
    print(f"concurrent / sequential, VAD close -> publish: median {ratio['median']:.3f}, p95 {ratio['p95']:.3f}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main()
