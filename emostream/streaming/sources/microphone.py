"""A live input device through sounddevice (PortAudio).

The PortAudio callback only copies the block into a bounded queue (never blocks, never
resamples); a full queue drops the block and counts it. Resampling to 16 kHz happens on the
reader thread. A device that stops delivering audio (unplugged, server gone) ends the stream
with a SourceError after ``stall_timeout_s`` instead of hanging.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from emostream.streaming.audio import AudioError
from emostream.streaming.resample import StreamResampler
from emostream.streaming.sources.base import AudioSource, SourceError, SourceInterrupted

log = logging.getLogger(__name__)


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # the module loads libportaudio at import time
        raise SourceError("PortAudio is not installed (apt-get install libportaudio2; macOS: brew install "
                          f"portaudio): {exc}") from exc
    return sounddevice


def list_input_devices() -> list[dict[str, Any]]:
    """Every device with input channels: index, name, host API, channels, default rate, is_default."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise SourceError(f"cannot list audio devices: {exc}") from exc
    out = []
    for i, dev in enumerate(devices):
        if dev["max_input_channels"] > 0:
            out.append({"index": i, "name": dev["name"], "hostapi": hostapis[dev["hostapi"]]["name"],
                        "channels": dev["max_input_channels"], "default_samplerate": dev["default_samplerate"],
                        "is_default": i == default_in})
    return out


def resolve_input_device(spec: str | int | None) -> dict[str, Any]:
    """``None`` -> the default input; an int (or digits) -> that index; text -> unique name substring."""
    devices = list_input_devices()
    if not devices:
        asked = "" if spec in (None, "", "default") else f"no input device matches {spec!r}: "
        raise SourceError(asked + "no audio input devices found (is a microphone connected? `emostream devices` lists them)")
    if spec is None or spec == "" or spec == "default":
        for dev in devices:
            if dev["is_default"]:
                return dev
        return devices[0]
    if isinstance(spec, int) or str(spec).isdigit():
        for dev in devices:
            if dev["index"] == int(spec):
                return dev
        raise SourceError(f"no input device with index {spec}; inputs are: "
                          + ", ".join(f"{d['index']}: {d['name']}" for d in devices))
    matches = [d for d in devices if str(spec).lower() in d["name"].lower()]
    exact = [d for d in matches if d["name"].lower() == str(spec).lower()]
    if len(exact) == 1:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SourceError(f"no input device matches {spec!r}; inputs are: "
                          + ", ".join(f"{d['index']}: {d['name']}" for d in devices))
    raise SourceError(f"{spec!r} matches several input devices ("
                      + ", ".join(f"{d['index']}: {d['name']}" for d in matches) + "); give the index")


class MicrophoneSource(AudioSource):
    kind = "microphone"

    def __init__(self, device: str | int | None, stream_id: str, block_ms: int = 20, queue_seconds: float = 2.0,
                 stall_timeout_s: float = 3.0, samplerate: int | None = None, retry: bool = False,
                 max_backoff_s: float = 10.0) -> None:
        """``retry``: a device that vanishes raises SourceInterrupted (the pipeline then calls
        ``reopen``, which retries with backoff up to ``max_backoff_s``) instead of SourceError."""
        self._spec, self._samplerate, self._block_ms = device, samplerate, block_ms
        self.retry, self.max_backoff_s = retry, max_backoff_s
        self.stall_timeout_s = stall_timeout_s
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(4, int(queue_seconds * 1000 / block_ms)))
        dev = resolve_input_device(device)
        super().__init__(stream_id, f"microphone {dev['index']}: {dev['name']}")
        self._open(dev)

    def _open(self, dev: dict[str, Any]) -> None:
        self.device = dev
        self.description = f"microphone {dev['index']}: {dev['name']}"
        self.rate = int(self._samplerate or dev["default_samplerate"])
        try:
            self._resample = StreamResampler(self.rate)
        except AudioError as exc:
            raise SourceError(f"{self.description}: {exc}") from exc
        blocksize = max(1, int(self.rate * self._block_ms / 1000))
        self._finished = threading.Event()
        sd = _sounddevice()
        try:
            self._stream = sd.InputStream(device=dev["index"], channels=1, samplerate=self.rate, dtype="float32",
                                          blocksize=blocksize, callback=self._callback,
                                          finished_callback=self._finished.set)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._stream = None
            raise SourceError(f"cannot open {self.description} at {self.rate} Hz: {exc}") from exc
        log.info("recording from %s at %d Hz", self.description, self.rate)

    def reopen(self, stop: threading.Event) -> bool:
        """Open the same device again (same index, name or default), waiting 0.5, 1, 2 … s between
        tries; returns False if ``stop`` came first."""
        self.close()
        backoff = 0.5
        while not stop.wait(backoff):
            self.count("reopen_attempts")
            try:
                self._open(resolve_input_device(self._spec))
            except SourceError as exc:
                log.debug("reopening: %s", exc)
                backoff = min(self.max_backoff_s, backoff * 2)
                continue
            while not self._queue.empty():  # nothing from before the loss leaks into the new stream
                self._queue.get_nowait()
            self.count("reopened")
            return True
        return False

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: copy and hand over, nothing else.
        if status.input_overflow:
            self.count("input_overflows")
        try:
            self._queue.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.count("dropped_blocks")

    def _blocks(self, stop: threading.Event) -> Iterator[np.ndarray]:
        last_audio = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    block = self._queue.get(timeout=0.1)
                except queue.Empty:
                    silent_for = time.monotonic() - last_audio
                    if self._finished.is_set() or silent_for > self.stall_timeout_s:
                        why = "the stream was closed" if self._finished.is_set() else \
                            f"no audio for {silent_for:.1f} s"
                        message = f"{self.description} stopped delivering audio ({why}); " \
                                  "was it unplugged or did the sound server stop?"
                        raise (SourceInterrupted if self.retry else SourceError)(message) from None
                    continue
                last_audio = time.monotonic()
                yield self._resample(block)
            while not self._queue.empty():  # what was already recorded when stop came
                yield self._resample(self._queue.get_nowait())
            yield self._resample(np.zeros(0, np.float32), last=True)
        finally:
            self.close()

    def close(self) -> None:
        stream = getattr(self, "_stream", None)
        if stream is not None:
            self._stream = None
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # a vanished device may refuse to stop cleanly
                log.debug("closing %s: %s", self.description, exc)
