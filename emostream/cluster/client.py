"""A gateway client: stream audio to ``ws://HOST:PORT/v1/stream`` and collect the results.

    import asyncio
    from emostream.cluster.client import stream_file
    results = asyncio.run(stream_file("ws://127.0.0.1:8765/v1/stream", "talk.wav", "desk-1"))

Also ``emostream stream FILE`` on the command line. Audio is sent as s16le at the file's own rate
in 20 ms frames, paced in real time unless ``realtime=False``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emostream.streaming.pcm import to_s16le


@dataclass
class StreamResult:
    session: str | None = None
    finals: list[dict[str, Any]] = field(default_factory=list)
    partials: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    summary: dict[str, Any] | None = None  # the gateway's account: utterances, finals, dropped, failed, missing


async def stream_audio(url: str, audio: np.ndarray, rate: int, stream_id: str, realtime: bool = True,
                       token: str | None = None, frame_ms: int = 20,
                       on_message: Callable[[dict[str, Any]], None] | None = None, ssl=None) -> StreamResult:
    """Send mono float audio in [-1, 1] as s16le; return everything the gateway sent back."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    pcm = np.frombuffer(to_s16le(audio), dtype="<i2")
    step = max(1, rate * frame_ms // 1000)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    result = StreamResult()
    async with connect(url, additional_headers=headers, max_size=2**22, ssl=ssl) as ws:
        await ws.send(json.dumps({"stream_id": stream_id, "rate": rate, "format": "s16le", "channels": 1}))

        async def receive() -> None:
            try:
                async for text in ws:
                    m = json.loads(text)
                    if m.get("type") == "ready":
                        result.session = m.get("session")
                    elif m.get("type") == "partial":
                        result.partials.append(m)
                    elif m.get("type") == "emotion":
                        result.finals.append(m)
                    elif m.get("type") == "end":
                        result.summary = m
                    if on_message is not None:
                        on_message(m)
            except ConnectionClosed:
                pass

        reader = asyncio.create_task(receive())
        t0 = time.monotonic()
        try:
            for i, start in enumerate(range(0, len(pcm), step)):
                await ws.send(pcm[start:start + step].tobytes())
                if realtime:
                    await asyncio.sleep(max(0.0, t0 + (i + 1) * frame_ms / 1000 - time.monotonic()))
            await ws.send(json.dumps({"type": "end"}))
        except ConnectionClosed:
            pass
        await reader
    result.close_code, result.close_reason = ws.close_code, ws.close_reason or ""
    return result


async def stream_file(url: str, path: str, stream_id: str, realtime: bool = True, token: str | None = None,
                      on_message: Callable[[dict[str, Any]], None] | None = None) -> StreamResult:
    import soundfile as sf

    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return await stream_audio(url, audio.mean(axis=1), rate, stream_id, realtime, token, on_message=on_message)
