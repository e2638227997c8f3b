"""The ``emostream`` command. Thin: parse flags, call the library, print."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

EXAMPLES = """examples:
  emostream classify --sample --format table    the two shipped demo clips
  emostream classify speech.wav                 one JSON line per file
  emostream classify a.flac b.mp3 --format table
  emostream train --out runs/mine               retrain the default model (needs ../shared/data)
"""


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _cmd_classify(args: argparse.Namespace) -> int:
    from emostream.clients.classify import classify_files, sample_files

    files = list(args.files) + (sample_files() if args.sample else [])
    if not files:
        print("emostream classify: give one or more FILEs, or --sample for the bundled demo clips", file=sys.stderr)
        return 2
    return classify_files(files, fmt=args.format, model=args.model, asr_model=args.asr_model,
                          device=args.device, threads=args.threads)


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from emostream.engine.training.train import TrainConfig, run_training

    torch.set_num_threads(args.threads)
    from emostream.engine.training.sec_train import SECTrainConfig

    cfg = TrainConfig(out=Path(args.out), cache=Path(args.cache), seed=args.seed,
                      compare_compact=not args.no_compact, sec=SECTrainConfig(head=args.sec_head))
    report = run_training(cfg)
    p = report["perspectives"]
    print(f"SEC (b) Whisper, {report['sec']['whisper_b']['variant']}: RAVDESS UA {report['sec']['whisper_b']['ua_mean']:.3f} "
          f"± {report['sec']['whisper_b']['ua_std']:.3f}")
    if report["sec"]["compact_scratch_a"]:
        a = report["sec"]["compact_scratch_a"]
        print(f"SEC (a) compact from scratch, RAVDESS UA {a['ua_mean']:.3f} ± {a['ua_std']:.3f}")
    print(f"TEC MELD test weighted F1 {report['tec']['test']['weighted_f1']:.3f}, UA {report['tec']['test']['ua']:.3f}")
    for name in ("ravdess", "meld_spoken", "union"):
        print(f"{name:12s} " + "  ".join(f"{s}: UA {p[name][s]['ua_mean']:.3f}" for s in ("sec_only", "tec_only", "fused")))
    print(f"wrote {args.out}/emostream-default.{{json,safetensors}} and report.json "
          f"({report['timings_s']['total'] / 60:.1f} min)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emostream",
        description="Speech emotion recognition from how it was said (SEC) and what was said (TEC).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and model loading")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("classify", help="classify the emotion of whole audio files (one utterance each)",
                       description="Classify each file as one utterance. Any format libsndfile reads; any sample "
                                   "rate or channel count (resampled to 16 kHz mono). Files that cannot be used get a "
                                   "one-line error on stderr; the others are still classified and the exit status is "
                                   "1 if any failed.")
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files (wav, flac, ogg, mp3, ...)")
    p.add_argument("--sample", action="store_true", help="also classify the demo clips shipped with emostream")
    p.add_argument("--format", choices=("jsonl", "table"), default="jsonl",
                   help="jsonl: one JSON object per line (default); table: a readable table")
    p.add_argument("--model", default=None, help="emostream bundle (stem, .json or directory); default: the shipped model")
    p.add_argument("--asr-model", default=None,
                   help="faster-whisper model: a local CTranslate2 directory or a hub name (online only); "
                        "default: bundled tiny.en")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="ASR device (default: auto)")
    p.add_argument("--threads", type=int, default=_threads(), help="CPU threads for the models (default: %(default)s)")
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("train", help="train and evaluate the default model on ../shared/data",
                       description="Train TEC on MELD, SEC on RAVDESS with speaker-independent folds, the fusion on "
                                   "the union set, then the final model. Seeded; stages cache their results.")
    p.add_argument("--out", default="runs/default", help="output directory for the bundle and report.json")
    p.add_argument("--cache", default=".cache/train", help="feature/stage cache directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sec-head", choices=("probe", "pooling"), default="probe",
                   help="probe: frozen Whisper encoder + logistic-regression probe on every layer's statistics "
                        "(default, shipped); pooling: fine-tune Whisper layers 2-3 with a weighted-layer pooling "
                        "head (≈ 25 min more)")
    p.add_argument("--no-compact", action="store_true", help="skip the from-scratch SEC comparison (a)")
    p.add_argument("--threads", type=int, default=_threads())
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one INFO line per clip otherwise
    if not getattr(args, "asr_model", None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # bundled models only: never reach for a hub
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
