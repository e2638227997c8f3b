"""``emostream listen``'s live terminal view (rich): current emotion per stream, history, latency.

While someone speaks, the stream's row shows the partial result (dim; the stable words brighter
than the unstable tail) until the final result replaces it. The history's latency is what the
speaker feels: end of speech -> result, i.e. the silence the VAD waits for before it closes
(``end_silence_ms``; none after a forced cut) plus VAD close -> publish, which is ≈ 0 ms for a
speculated result (recognized during that silence)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


COLOURS = {"neutral": "white", "happy": "bright_green", "sad": "blue", "angry": "red", "fearful": "magenta",
           "disgusted": "yellow", "surprised": "cyan"}


def _bar(value: float, width: int = 20) -> str:
    filled = int(round(max(0.0, min(1.0, value)) * width))
    return "█" * filled + "░" * (width - filled)


class Monitor:
    """A Sink: takes the pipeline's messages and redraws a rich Live view four times a second."""

    def __init__(self, title: str, console: Console | None = None, history: int = 8,
                 end_silence_ms: float = 300.0) -> None:
        self.title = title
        self.end_silence_ms = end_silence_ms  # the segmenter's: speech ends this long before the VAD closes
        self.console = console or Console()
        self._lock = threading.Lock()
        self._current: dict[str, dict[str, Any]] = {}
        self._partial: dict[str, dict[str, Any]] = {}  # the utterance being spoken, per stream
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        self._status: dict[str, Any] | None = None
        self._started = time.monotonic()
        self._live: Live | None = None

    def start(self) -> Monitor:
        self._live = Live(console=self.console, refresh_per_second=4, get_renderable=self.render, transient=False)
        self._live.start()
        return self

    def emit(self, topic: str, message: dict[str, Any]) -> None:
        with self._lock:
            if message.get("type") == "partial":
                self._partial[message["stream_id"]] = message
            elif message.get("type") == "emotion":
                partial = self._partial.get(message["stream_id"])
                if partial is not None and partial["seq"] <= message["seq"]:
                    del self._partial[message["stream_id"]]  # the final replaces it
                self._current[message["stream_id"]] = message
                first = message["utterance"].get("turn_first_seq", message["seq"])
                if first < message["seq"]:  # the whole turn so far replaces its earlier fragments
                    kept = [m for m in self._history if m["stream_id"] != message["stream_id"] or m["seq"] < first]
                    self._history.clear()
                    self._history.extend(kept)
                self._history.appendleft(message)
            elif message.get("type") == "status":
                self._status = message

    def close(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    # --- drawing --------------------------------------------------------------------------------
    def _current_panel(self) -> Panel:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column()
        if not self._current and not self._partial:
            grid.add_row(Text("listening…", style="dim"), Text("speak; each pause ends an utterance", style="dim"))
        for sid in sorted(set(self._current) | set(self._partial)):
            if sid in self._partial:
                grid.add_row(*self._partial_row(sid, self._partial[sid]))
                continue
            m = self._current[sid]
            colour = COLOURS.get(m["label"], "white")
            head = Text.assemble((f"{sid}  ", "bold"), (m["label"].upper(), f"bold {colour}"))
            body = Text.assemble((_bar(m["confidence"]), colour), f" {m['confidence']:.2f}   ",
                                 f"valence {m['valence']:+.2f}  arousal {m['arousal']:+.2f}\n",
                                 (f"“{m['transcript']}”" if m["transcript"] else "(no words recognised)", "italic"))
            top3 = sorted(m["probs"].items(), key=lambda kv: -kv[1])[1:3]
            body.append("\nalso: " + ", ".join(f"{k} {v:.2f}" for k, v in top3), style="dim")
            grid.add_row(head, body)
        return Panel(grid, title=f"emostream · {self.title}", title_align="left", border_style="bright_black")

    @staticmethod
    def _partial_row(sid: str, p: dict[str, Any]) -> tuple[Text, Text]:
        colour = COLOURS.get(p["label"], "white")
        head = Text.assemble((f"{sid}  ", "bold"), (p["label"].lower() + "…", f"dim {colour}"))
        body = Text.assemble((_bar(p["confidence"]), f"dim {colour}"), (f" {p['confidence']:.2f}   speaking, "
                             f"{p['audio_s']:.1f} s so far\n", "dim"))
        body.append("“", style="dim")
        body.append(p["stable"], style="italic")
        body.append((" " if p["stable"] and p["unstable"] else "") + p["unstable"], style="dim italic")
        body.append("”", style="dim")
        return head, body

    def _history_table(self) -> Table:
        table = Table(box=None, expand=True, header_style="bold dim", pad_edge=False)
        for name, kw in (("time", {"no_wrap": True}), ("stream", {"no_wrap": True}), ("at", {"justify": "right"}),
                         ("emotion", {"no_wrap": True}), ("conf", {"justify": "right"}),
                         ("after speech", {"justify": "right"}), ("transcript", {"ratio": 1, "overflow": "ellipsis",
                                                                          "no_wrap": True})):
            table.add_column(name, **kw)
        for m in self._history:
            table.add_row(time.strftime("%H:%M:%S", time.localtime(m["published_at"])), m["stream_id"],
                          f"{m['utterance']['start_s']:.1f}s", Text(m["label"], style=COLOURS.get(m["label"], "")),
                          f"{m['confidence']:.2f}", f"{self.after_speech_ms(m):.0f} ms",
                          m["transcript"] or "—")
        return table

    def after_speech_ms(self, message: dict[str, Any]) -> float:
        """End of speech -> this result."""
        waited = 0.0 if message["utterance"].get("forced_cut") else self.end_silence_ms
        return waited + message["timings_ms"]["vad_close_to_publish"]

    def _footer(self) -> Text:
        s = self._status
        if s is None:
            return Text(f"up {time.monotonic() - self._started:.0f} s · waiting for the first heartbeat", style="dim")
        lat = s["latency_ms"].get("vad_close_to_publish")
        streams = s["streams"].values()
        total = {k: sum(st[k] for st in streams) for k in ("utterances", "published", "dropped", "failed")}
        overflows = sum(sum(st["source_counters"].values()) for st in streams)
        parts = [f"up {s['uptime_s']:.0f} s", f"utterances {total['published']}/{total['utterances']}"]
        if lat:
            parts.append(f"VAD close→publish p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms")
        parts.append(f"queue {s['queue']['depth']}/{s['queue']['capacity']}")
        style = "dim"
        if total["dropped"] or total["failed"] or overflows:
            parts.append(f"dropped {total['dropped']} · failed {total['failed']} · audio overflows {overflows}")
            style = "yellow"
        errors = [f"{sid}: {st['error']}" for sid, st in s["streams"].items() if st["error"]]
        text = Text(" · ".join(parts), style=style)
        for e in errors:
            text.append("\n" + e, style="bold red")
        return text

    def render(self) -> Group:
        with self._lock:
            return Group(self._current_panel(), self._history_table(), self._footer())
