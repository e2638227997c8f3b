"""``emostream serve``: one process (the shipped models, no bus) serves the page and the WebSocket
protocol. Real speech streamed in real time comes back as partials and finals with the right words,
a watcher sees them too, and the page's files and its origin rule hold."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from emostream.cluster.local import Processes, free_port

pytestmark = pytest.mark.slow  # a model-loading server process

TOKEN = "page-test-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    procs = Processes(tmp_path_factory.mktemp("serve-logs"))
    port = free_port()
    procs.start("serve", "serve", "--listen", f"127.0.0.1:{port}", "--token", TOKEN)
    try:
        procs.wait_log("serve", "/v1/stream")
        yield f"127.0.0.1:{port}", procs
    finally:
        procs.stop("serve")
        procs.stop_all()


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_page_and_its_files_are_served_from_the_package(server):
    host, _ = server
    status, headers, body = _get(f"http://{host}/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'id="start"' in body and b"Start microphone" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name in ("app.js", "mic-worklet.js", "downsample.js"):
        status, headers, body = _get(f"http://{host}/{name}")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript") and body, name
    assert _get(f"http://{host}/style.css")[1]["Content-Type"].startswith("text/css")
    for path in ("/nothing.js", "/..%2F..%2Fetc%2Fpasswd", "/static/app.js", "/app.js.map"):
        assert _get(f"http://{host}{path}")[0] == 404, path
    # the page asks the endpoint with a plain GET to tell a wrong token from a lost server
    assert _get(f"http://{host}/v1/stream?token=wrong")[0] == 401


def test_pages_of_other_origins_are_refused_and_the_own_page_is_not(server):
    host, _ = server

    async def go():
        with pytest.raises(InvalidStatus) as other:
            async with connect(f"ws://{host}/v1/stream?token={TOKEN}", origin="http://evil.example"):
                pass
        async with connect(f"ws://{host}/v1/stream?token={TOKEN}", origin=f"http://{host}") as ws:
            await ws.send(json.dumps({"stream_id": "same-origin", "rate": 16000}))
            ready = json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "end"}))
            async for _ in ws:
                pass
        return other.value.response.status_code, ready["type"]

    assert asyncio.run(go()) == (403, "ready")


def test_spoken_sentences_come_back_with_their_words_and_a_watcher_sees_them(server, dialogue):
    jiwer = pytest.importorskip("jiwer")
    from emostream.engine.training.metrics import wer_words as norm

    host, _ = server
    pcm = (np.clip(dialogue.audio, -1, 1) * 32767).astype("<i2")

    async def watch(seen: list[dict], ready: asyncio.Event) -> None:
        async with connect(f"ws://{host}/v1/watch?stream_id=talk&token={TOKEN}") as ws:
            assert json.loads(await ws.recv()) == {"type": "watching", "stream_id": "talk"}
            ready.set()
            async for text in ws:
                seen.append(json.loads(text))

    async def talk() -> list[dict]:
        got = []
        async with connect(f"ws://{host}/v1/stream", additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            await ws.send(json.dumps({"stream_id": "talk", "rate": 16000, "format": "s16le", "channels": 1}))
            assert json.loads(await ws.recv())["type"] == "ready"

            async def read() -> None:
                async for text in ws:
                    got.append(json.loads(text))

            reader = asyncio.create_task(read())
            t0 = time.monotonic()
            for k in range(0, len(pcm), 320):  # 20 ms frames at real-time pace, as the page sends them
                await ws.send(pcm[k:k + 320].tobytes())
                await asyncio.sleep(max(0.0, t0 + (k + 320) / 16000 - time.monotonic()))
            await ws.send(json.dumps({"type": "end"}))
            await reader
        assert ws.close_code == 1000, ws.close_reason
        return got

    async def go():
        seen, ready = [], asyncio.Event()
        watcher = asyncio.create_task(watch(seen, ready))
        await asyncio.wait_for(ready.wait(), 10)
        got = await talk()
        await asyncio.sleep(0.5)
        watcher.cancel()
        return got, seen

    got, seen = asyncio.run(go())
    finals = [m for m in got if m["type"] == "emotion"]
    partials = [m for m in got if m["type"] == "partial"]
    summary = got[-1]
    assert summary["type"] == "end" and summary["finals"] == len(finals) == len(dialogue.sentences), summary
    assert [m["seq"] for m in finals] == list(range(1, len(finals) + 1))
    heard = " ".join(m["transcript"] for m in finals)
    assert jiwer.wer(norm(" ".join(dialogue.sentences)), norm(heard)) < 0.25, heard
    for m in finals:
        assert abs(sum(m["probs"].values()) - 1) < 1e-3 and m["session"] == finals[0]["session"]
    # partials come before their final, with the stable prefix the page shows bright
    assert partials and all("stable" in p and "unstable" in p for p in partials)
    first_final = {m["seq"]: i for i, m in reversed(list(enumerate(got))) if m["type"] == "emotion"}
    assert all(i < first_final[p["seq"]] for i, p in enumerate(got) if p["type"] == "partial" and p["seq"] in first_final)
    # the watcher saw the same finals (it sends no audio)
    assert [(m["seq"], m["label"]) for m in seen if m["type"] == "emotion"] == [(m["seq"], m["label"]) for m in finals]


def test_watch_needs_a_valid_stream_id_and_the_token(server):
    host, _ = server

    async def go():
        with pytest.raises(InvalidStatus) as no_token:
            async with connect(f"ws://{host}/v1/watch?stream_id=x"):
                pass
        async with connect(f"ws://{host}/v1/watch?stream_id=bad%20id&token={TOKEN}") as ws:
            try:
                await ws.recv()
            except Exception:
                pass
        return no_token.value.response.status_code, ws.close_code, ws.close_reason

    status, code, reason = asyncio.run(go())
    assert status == 401 and code == 1008 and "stream_id" in reason
