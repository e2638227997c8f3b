"""``emostream classify``: whole files in, one result per file out (JSON lines or a table)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from emostream.engine.asr import ASRConfig
from emostream.streaming.audio import AudioError, load_audio


def sample_files() -> list[str]:
    """The demo clips shipped in the package (espeak-ng speech, see tools/make_samples.py)."""
    return sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "samples").glob("*.wav"))


def result_record(path: str, result) -> dict:
    record = {"file": path, **asdict(result)}
    record["timings_ms"] = {k: record["timings_ms"][k] for k in ("sec", "asr", "text", "fusion")}
    return record


def classify_files(files: list[str], fmt: str = "jsonl", model: str | None = None, asr_model: str | None = None,
                   device: str = "auto", threads: int = 2, sec_backend: str = "auto", fusion: str = "fixed",
                   asr_context: str = ASRConfig.context) -> int:
    from emostream.engine.bundle import BundleError
    from emostream.engine.recognizer import Recognizer

    try:
        recognizer = Recognizer(model, ASRConfig(model=asr_model, device=device, cpu_threads=threads,
                                                    context=asr_context),
                                torch_threads=threads, sec_backend=sec_backend, fusion=fusion)
    except (BundleError, RuntimeError, OSError, ValueError) as exc:
        print(f"emostream: {exc}", file=sys.stderr)
        return 2
    failures = 0
    records = []
    for name in files:
        try:
            result = recognizer.classify(load_audio(name))
        except AudioError as exc:
            failures += 1
            print(f"emostream: {name}: {exc}", file=sys.stderr)
            continue
        record = result_record(name, result)
        if fmt == "jsonl":
            print(json.dumps(record), flush=True)
        else:
            records.append(record)
    if fmt == "table" and records:
        _print_table(records)
    if failures:
        print(f"emostream: {failures} of {len(files)} file(s) could not be classified", file=sys.stderr)
    return 1 if failures else 0


def _print_table(records: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="emostream classify")
    table.add_column("file", no_wrap=True)
    table.add_column("label", no_wrap=True)
    for col in ("conf", "valence", "arousal", "transcript", "ms sec/asr/text/fusion"):
        table.add_column(col, overflow="fold")
    for r in records:
        t = r["timings_ms"]
        table.add_row(Path(r["file"]).name, r["label"], f"{r['confidence']:.2f}", f"{r['valence']:+.2f}",
                      f"{r['arousal']:+.2f}", r["transcript"] or "—",
                      f"{t['sec']:.0f}/{t['asr']:.0f}/{t['text']:.0f}/{t['fusion']:.1f}")
    # in a pipe (a CI log, `| less`) rich would assume 80 columns and fold every cell: take the width
    # the table needs instead (COLUMNS, when set, still wins)
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    Console(width=1000 if wide else None).print(table)
