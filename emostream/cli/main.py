"""The ``emostream`` command. Thin: parse flags, set up logging, run the command."""

from __future__ import annotations

import logging
import os
import sys

from emostream.cli.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if args.verbose
                        else f"emostream {args.command}: %(message)s")
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
