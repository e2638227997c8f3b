"""Render the `emostream listen` monitor from a JSONL event log, as text and SVG (for the README).

    emostream listen --jsonl desk.jsonl          # talk, then Ctrl-C
    python tools/capture_monitor.py desk.jsonl --svg docs/monitor.svg
    python tools/capture_monitor.py desk.jsonl --lines 40   # the view after the log's first 40 events

Uses the monitor's own drawing code on the logged messages, so the picture is what the live view
showed after the last event.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from rich.console import Console

from emostream.sinks.monitor import Monitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jsonl", type=Path)
    parser.add_argument("--title", default="microphone 1: default → tcp://127.0.0.1:5556")
    parser.add_argument("--width", type=int, default=110)
    parser.add_argument("--svg", type=Path, default=None)
    parser.add_argument("--lines", type=int, default=None, help="draw the view after this many events (e.g. mid-sentence)")
    args = parser.parse_args()
    console = Console(record=True, width=args.width, force_terminal=True, color_system="truecolor", file=io.StringIO())
    monitor = Monitor(args.title, console=console)
    for line in args.jsonl.read_text().splitlines()[:args.lines]:
        message = json.loads(line)
        monitor.emit(message.pop("topic"), message)
    console.print(monitor.render())
    if args.svg:
        console.save_svg(str(args.svg), title="emostream listen", clear=False)
    print(console.export_text())


if __name__ == "__main__":
    main()
