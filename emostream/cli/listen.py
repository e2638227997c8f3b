"""``emostream listen``: build sources from the user's flags, load the models once, run the pipeline.

Order matters: inputs are checked first (a typo fails in milliseconds), then models load and warm
up, and only then do microphones open, so no audio piles up while weights are read.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path


log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class InputSpec:
    kind: str  # "file" | "stdin" | "microphone"
    target: str | None  # path, or device spec (None: the default input)
    stream_id: str


@dataclass
class ListenOptions:
    inputs: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    realtime: bool = True
    rate: int | None = None
    channels: int = 1
    stall_timeout_s: float = 3.0
    retry_device: bool = True  # a vanished microphone is reopened with backoff (False: listen ends, status 1)


class UsageError(ValueError):
    """Bad flags or inputs; the message is one line for the user."""


def _sanitize(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:56]  # room for a "-NN" suffix
    return cleaned or "stream"


def _unique(ids: list[str]) -> list[str]:
    """take, take, take-2 -> take, take-3, take-2: later duplicates get the first free suffix."""
    taken, out = set(ids), []
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            n = 2
            while f"{sid}-{n}" in taken:
                n += 1
            sid = f"{sid}-{n}"
            taken.add(sid)
        seen.add(sid)
        out.append(sid)
    return out


def parse_inputs(opts: ListenOptions) -> list[InputSpec]:
    """``--input`` values: a file path, ``-`` (stdin PCM), ``mic`` or ``mic:DEVICE``; ``ID=...`` names
    the stream. ``--device`` adds microphones. Nothing at all: the default microphone."""
    specs: list[InputSpec] = []
    raw = [(v, None) for v in opts.inputs] + [(None, d) for d in opts.devices]
    if not raw:
        raw = [(None, "default")]
    mics = 0
    for value, device in raw:
        stream_id = None
        if value is not None and "=" in value and not Path(value).exists():
            stream_id, value = value.split("=", 1)
            if not _ID.match(stream_id):
                raise UsageError(f"stream id {stream_id!r} may only use letters, digits, '_', '.', '-' (max 64)")
        if device is not None or value == "mic" or (value or "").startswith("mic:"):
            target = device if device is not None else (value[4:] if value.startswith("mic:") else "default")
            specs.append(InputSpec("microphone", None if target == "default" else target,
                                   stream_id or ("mic" if mics == 0 else f"mic{mics}")))
            mics += 1
        elif value == "-":
            if opts.rate is None:
                raise UsageError("--input - reads raw s16le PCM from stdin: give its sample rate with --rate "
                                 "(e.g. --rate 16000)")
            specs.append(InputSpec("stdin", None, stream_id or "stdin"))
        else:
            path = Path(value)
            if not path.is_file():
                raise UsageError(f"no such file: {value} (inputs are files, '-' for stdin, or mic[:DEVICE])")
            specs.append(InputSpec("file", str(path), stream_id or _sanitize(path.stem)))
    ids = _unique([s.stream_id for s in specs])
    specs = [InputSpec(s.kind, s.target, sid) for s, sid in zip(specs, ids)]
    if sum(s.kind == "stdin" for s in specs) > 1:
        raise UsageError("stdin can be read by one input only")
    return specs


def open_source(spec: InputSpec, opts: ListenOptions):
    from emostream.streaming.sources import FileSource, MicrophoneSource, StdinSource

    if spec.kind == "file":
        return FileSource(spec.target, spec.stream_id, realtime=opts.realtime)
    if spec.kind == "stdin":
        return StdinSource(spec.stream_id, rate=opts.rate, channels=opts.channels)
    return MicrophoneSource(spec.target, spec.stream_id, stall_timeout_s=opts.stall_timeout_s,
                            retry=opts.retry_device)


def load_recognizer(args):
    """The models named by the model flags (cli.parser._model_flags), loaded and warmed up, with an
    ASR replica per --concurrency (shared weights)."""
    from emostream.engine.asr import ASRConfig
    from emostream.engine.bundle import BundleError
    from emostream.engine.recognizer import Recognizer

    try:
        recognizer = Recognizer(args.model, ASRConfig(model=args.asr_model, device=args.compute,
                                                      cpu_threads=args.threads, context=args.asr_context,
                                                      parallel=args.concurrency),
                                torch_threads=max(1, args.threads // 2), sec_backend=args.sec_backend,
                                fusion=args.fusion)
    except (BundleError, FileNotFoundError) as exc:
        raise RuntimeError(str(exc)) from exc
    try:
        recognizer.warm_up()
    except BaseException:
        recognizer.close()
        raise
    return recognizer


class ShutdownOnSignal:
    """First SIGINT/SIGTERM: ``stop()`` in a thread (finish and publish what is in hand; it may
    take a while). A second one raises KeyboardInterrupt in the main thread: abort now."""

    def __init__(self, stop, announce, what: str = "finishing the current utterance") -> None:
        self.stop = stop
        self.announce = announce
        self.what = what
        self._hits = 0
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self._hits += 1
        if self._hits > 1:
            raise KeyboardInterrupt
        self.announce(f"{signal.Signals(signum).name}: {self.what} (press Ctrl-C again to abort)")
        threading.Thread(target=self.stop, name="shutdown", daemon=True).start()

    def __enter__(self) -> ShutdownOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def stderr(msg: str) -> None:
    print(f"emostream listen: {msg}", file=sys.stderr, flush=True)
