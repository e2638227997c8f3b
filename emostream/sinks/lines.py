"""Message sinks besides the publisher: a JSON-lines log and plain lines for pipes and logs, and the
one readable line per message that ``listen`` (without a terminal) and ``subscribe`` print."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from emostream.protocol import STATUS_TOPIC


class JsonlSink:
    """Every emotion event and partial result (``"final": true`` / ``false``), and the final status,
    one JSON object per line (flushed each line)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file: TextIO | None = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise OSError(f"cannot write the event log {self.path}: {exc.strerror}") from exc
        self._lock = threading.Lock()

    def emit(self, topic: str, message: dict[str, Any]) -> None:
        if (topic == STATUS_TOPIC and message.get("state") != "stopped") or message.get("type") == "gone":
            return
        with self._lock:
            if self._file is not None:
                self._file.write(json.dumps({"topic": topic, **message}, ensure_ascii=False) + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def silence_stdout() -> None:
    """After the reader of our stdout pipe has gone: point stdout at /dev/null so later writes and
    the interpreter's final flush do not raise BrokenPipeError."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def event_line(message: dict[str, Any]) -> str:
    """One readable line for an emotion, partial or status message."""
    if message.get("type") == "partial":
        return (f"[partial] {message['stream_id']}#{message['seq']} {message['audio_s']:4.1f} s  "
                f"{message['label']:<9} {message['confidence']:.2f}  {message['stable']} | {message['unstable']}")
    if message.get("type") == "status":
        lat = message["latency_ms"].get("vad_close_to_publish")
        return (f"[status] {message['state']} up {message['uptime_s']:.0f} s; " + "; ".join(
            f"{sid}: {st['published']}/{st['utterances']} published, {st['dropped']} dropped"
            for sid, st in message["streams"].items())
            + (f"; close->publish p50 {lat['p50']:.0f} ms p95 {lat['p95']:.0f} ms" if lat else ""))
    u = message["utterance"]
    transcript = message["transcript"] or "(no words recognised)"
    return (f"[{message['stream_id']} #{message['seq']} {u['start_s']:7.2f}-{u['end_s']:7.2f}s] "
            f"{message['label']:<9} {message['confidence']:.2f}  V{message['valence']:+.2f} A{message['arousal']:+.2f}  "
            f"{message['timings_ms']['vad_close_to_publish']:5.0f} ms  {transcript}")


class LineSink:
    """Plain text lines, one per emotion event: what `listen` prints when stdout is not a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream: TextIO | None = stream or sys.stdout

    def emit(self, topic: str, message: dict[str, Any]) -> None:
        if message.get("type") == "emotion" and self._stream is not None:
            try:
                print(event_line(message), file=self._stream, flush=True)
            except BrokenPipeError:  # `listen | head`: the reader left; keep publishing, stop printing
                self._stream = None
                silence_stdout()

    def close(self) -> None:
        pass
