"""The page in a real browser: Debian's Chromium driven by Playwright, a WAV file as its microphone
(``--use-file-for-fake-audio-capture``), ``emostream serve`` with the shipped models behind it.

Spoken sentences become finals on the page with the right words and one timeline point each,
partials are seen before each final, a watching page sees them too, and a wrong token and an
overloaded server are said in words."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from services import unavailable

from emostream.cluster.local import Processes, free_port

pytestmark = pytest.mark.slow  # a browser and a model-loading server

CHROMIUM = os.environ.get("EMOSTREAM_CHROMIUM", "/usr/lib/chromium/chromium")
TOKEN = "browser-test-token"


def _chromium_args(wav: Path) -> list[str]:
    return ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    with sync_playwright() as p:
        yield p


def _serve(procs: Processes, name: str, *extra: str) -> str:
    port = free_port()
    procs.start(name, "serve", "--listen", f"127.0.0.1:{port}", "--token", TOKEN, *extra)
    procs.wait_log(name, "/v1/stream")
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    procs = Processes(tmp_path_factory.mktemp("page-logs"))
    try:
        yield _serve(procs, "serve"), procs
    finally:
        procs.stop("serve")
        procs.stop_all()


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory, dialogue) -> Path:
    """The dialogue as 16-bit PCM (24-bit gives silence without an error), led by 0.5 s of silence
    (the first few hundred ms can be lost before the worklet connects)."""
    path = tmp_path_factory.mktemp("mic") / "dialogue16.wav"
    sf.write(path, np.concatenate([np.zeros(8000, np.float32), dialogue.audio]), 16000, subtype="PCM_16")
    return path


def _launch(playwright, wav: Path):
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    return playwright.chromium.launch(executable_path=executable, args=_chromium_args(wav))


def test_spoken_sentences_become_finals_on_the_page_and_the_timeline(playwright, server, microphone_wav, dialogue,
                                                                     tmp_path):
    jiwer = pytest.importorskip("jiwer")
    from emostream.engine.training.metrics import wer_words as norm

    host, _ = server
    n = len(dialogue.sentences)
    browser = _launch(playwright, microphone_wav)
    try:
        watcher = browser.new_page()
        watcher.goto(f"http://{host}/?watch=desk&token={TOKEN}")
        watcher.wait_for_function("() => document.getElementById('connection').textContent.startsWith('watching')")
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://{host}/?token={TOKEN}&stream_id=desk")
        page.get_by_role("button", name=re.compile("Start")).click()
        page.wait_for_function(f"() => window.emostream.finals.length >= {n}",
                               timeout=(len(dialogue.audio) / 16000 + 40) * 1000)
        page.get_by_role("button", name="Stop").click()
        page.wait_for_function("() => window.emostream.summary !== null", timeout=30_000)
        seen = page.evaluate("""() => ({
            finals: window.emostream.finals.map(m => ({seq: m.seq, transcript: m.transcript, label: m.label,
                                                      latency: m.latency_ms})),
            order: window.emostream.messages.map(m => [m.type, m.seq]),
            granted: window.emostream.granted, contextRate: window.emostream.contextRate,
            summary: window.emostream.summary,
            points: document.getElementById('timeline').dataset.finals,
            rows: document.querySelectorAll('#finals tr').length,
            state: document.getElementById('connection').textContent})""")
        if os.environ.get("EMOSTREAM_PAGE_SCREENSHOT"):  # docs/page.png is made this way
            page.screenshot(path=os.environ["EMOSTREAM_PAGE_SCREENSHOT"], full_page=True)
        watched = watcher.evaluate("() => window.emostream.finals.map(m => m.seq)")
    finally:
        browser.close()

    assert len(seen["finals"]) == n and seen["points"] == str(n) and seen["rows"] == n, seen
    assert seen["summary"]["finals"] == n and "stream ended" in seen["state"]
    heard = " ".join(f["transcript"] for f in seen["finals"])
    assert jiwer.wer(norm(" ".join(dialogue.sentences)), norm(heard)) < 0.25, heard
    for seq in range(1, n + 1):  # a partial of each utterance before its final
        kinds = [kind for kind, s in seen["order"] if s == seq]
        assert "partial" in kinds and kinds.index("partial") < kinds.index("emotion"), (seq, kinds)
    latencies = [f["latency"] for f in seen["finals"]]
    assert all(lat is not None and 0 < lat < 10_000 for lat in latencies), latencies
    # the browser was asked for the raw voice and said what it granted; the worklet ran at its own rate
    assert seen["granted"]["echoCancellation"] is False and seen["granted"]["autoGainControl"] is False
    assert seen["contextRate"] in (16000, 44100, 48000)
    assert watched == list(range(1, n + 1))


def test_a_wrong_token_and_an_overload_are_said_in_words(playwright, server, microphone_wav, tmp_path_factory):
    from websockets.sync.client import connect  # Playwright's sync API may not run inside an asyncio loop

    host, _ = server
    browser = _launch(playwright, microphone_wav)
    procs = Processes(tmp_path_factory.mktemp("full-logs"))
    try:
        page = browser.new_page()
        page.goto(f"http://{host}/?token=wrong")
        page.get_by_role("button", name=re.compile("Start")).click()
        page.wait_for_function("() => document.getElementById('error').textContent.length > 0", timeout=20_000)
        assert "token" in page.locator("#error").text_content()

        full = _serve(procs, "full", "--max-streams", "1")

        with connect(f"ws://{full}/v1/stream?token={TOKEN}") as ws:  # takes the only slot
            ws.send(json.dumps({"stream_id": "holder", "rate": 16000}))
            ws.recv()
            page.goto(f"http://{full}/?token={TOKEN}")
            page.get_by_role("button", name=re.compile("Start")).click()
            page.wait_for_function("() => document.getElementById('error').textContent.length > 0", timeout=20_000)
            said = page.locator("#error").text_content()
        assert "overloaded" in said and "capacity" in said, said
    finally:
        browser.close()
        procs.stop_all()
