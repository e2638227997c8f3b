"""The page as its user meets it: Chromium (Debian's, driven by Playwright) with a WAV file as its
microphone, talking to ``emostream serve``'s parts running in this process on the bench's models.

Clock: the end of each spoken utterance is known from the WAV (its last audible sample). The page
logs when each 20 ms frame left and how loud it was, and stamps when the frame that draws each final
was painted. The first 10–430 ms of the file can be lost before the worklet connects, so the WAV's
loudness envelope is aligned with the page's (log-RMS per 20 ms frame, cross-correlated) to find the
frame that carried each utterance's end: ``speech_end_to_shown`` = painted − that frame's departure.

The browser's CPU (every Chromium process, from the DevTools ``SystemInfo.getProcessInfo``) is
reported idle with the page open and while it streams.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

RATE, FRAME = 16000, 320  # the page's frames: 20 ms of 16 kHz
DEFAULT_CHROMIUM = "/usr/lib/chromium/chromium"


def chromium_executable() -> str | None:
    for candidate in (os.environ.get("EMOSTREAM_CHROMIUM"), DEFAULT_CHROMIUM, shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def unavailable() -> str | None:
    """Why the page cannot be driven here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install 'emostream[test]')"
    if chromium_executable() is None:
        return f"no Chromium at {DEFAULT_CHROMIUM} or on PATH (apt-get install chromium, or set EMOSTREAM_CHROMIUM)"
    return None


def chromium_args(wav: Path) -> list[str]:
    """A 16-bit PCM WAV as the microphone (24-bit or a missing file give silence without an error)."""
    return ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={Path(wav).resolve()}%noloop",
            "--autoplay-policy=no-user-gesture-required"]


def launch(playwright, wav: Path, **kw):
    return playwright.chromium.launch(executable_path=chromium_executable(), args=chromium_args(wav), **kw)


@dataclass
class PageRun:
    sent_at: np.ndarray  # ms on the page's clock when each frame left
    sent_rms: np.ndarray  # its RMS, full scale 1
    first_frame: int  # index of sent_at[0] among all frames of the stream
    shown: list[dict]  # per final: seq, end_s (stream time), received_at, shown_at
    finals: list[dict]
    granted: dict
    summary: dict
    cpu: dict


def _cpu_seconds(cdp) -> dict[str, float]:
    by_type: dict[str, float] = {}
    for p in cdp.send("SystemInfo.getProcessInfo")["processInfo"]:
        by_type[p["type"]] = by_type.get(p["type"], 0.0) + p["cpuTime"]
    return by_type


def _cpu_share(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict:
    """Percent of one core, all Chromium processes and per process type."""
    kinds = {k: round(100 * (after.get(k, 0.0) - before.get(k, 0.0)) / wall_s, 1) for k in after}
    return {"percent_of_one_core": round(sum(kinds.values()), 1), "by_process": kinds, "seconds": round(wall_s, 1)}


def stream_through_page(playwright, url: str, wav: Path, audio_s: float, query: str = "",
                        idle_s: float = 5.0, tail_s: float = 1.5, settle_s: float = 2.0) -> PageRun:
    """Open the page, measure it idle, press Start, stream the whole WAV (plus ``tail_s`` of the
    silence the fake microphone sends after it), press Stop and wait for the server's summary."""
    browser = launch(playwright, wav)
    try:
        cdp = browser.new_browser_cdp_session()
        page = browser.new_page(viewport={"width": 1280, "height": 800}, ignore_https_errors=True)
        page.goto(url + (f"?{query}" if query else ""))
        time.sleep(settle_s)  # idle means after the page has loaded and drawn
        before, t0 = _cpu_seconds(cdp), time.monotonic()
        time.sleep(idle_s)
        idle = _cpu_share(before, _cpu_seconds(cdp), time.monotonic() - t0)
        before, t0 = _cpu_seconds(cdp), time.monotonic()
        page.get_by_role("button", name=re.compile("Start")).click()
        page.wait_for_function(f"() => (window.emostream.sent.length + window.emostream.sentDropped) * 0.02 >= "
                               f"{audio_s + tail_s}", timeout=(audio_s + 60) * 1000, polling=200)
        streaming = _cpu_share(before, _cpu_seconds(cdp), time.monotonic() - t0)
        page.get_by_role("button", name="Stop").click()
        page.wait_for_function("() => window.emostream.summary !== null", timeout=90_000)
        page.wait_for_function("() => window.emostream.shown.every(s => s.shown_at !== null)", timeout=5_000)
        data = page.evaluate("""() => ({sent_at: window.emostream.sent.map(f => f.at),
            sent_rms: window.emostream.sent.map(f => f.rms), first: window.emostream.sentDropped,
            shown: window.emostream.shown, finals: window.emostream.finals, granted: window.emostream.granted,
            summary: window.emostream.summary})""")
    finally:
        browser.close()
    return PageRun(np.asarray(data["sent_at"], float), np.asarray(data["sent_rms"], float), int(data["first"]),
                   data["shown"], data["finals"], data["granted"] or {}, data["summary"],
                   {"idle": idle, "streaming": streaming})


def _log_envelope(rms: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(rms, 1e-5))


def frame_lag(audio: np.ndarray, sent_rms: np.ndarray, max_lag_frames: int = 200) -> int:
    """How many 20 ms frames of the WAV the page never sent (it connected late): the lag that best
    lines up the two loudness envelopes."""
    n_wav = len(audio) // FRAME
    wav = _log_envelope(np.sqrt(np.mean(audio[:n_wav * FRAME].astype(np.float64).reshape(-1, FRAME) ** 2, axis=1)))
    page = _log_envelope(sent_rms)
    best, best_score = 0, -np.inf
    for lag in range(0, min(max_lag_frames, n_wav - 1) + 1):
        n = min(len(page), n_wav - lag)
        if n < 50:
            break
        a, b = wav[lag:lag + n], page[:n]
        if a.std() == 0 or b.std() == 0:
            continue
        score = float(np.corrcoef(a, b)[0, 1])
        if score > best_score:
            best, best_score = lag, score
    return best


def speech_end_to_shown(run: PageRun, regions: list[tuple[int, int, int, int]], lag: int) -> list[float]:
    """Per spoken utterance (regions as ``live.recording`` gives them, in WAV samples): its last final
    painted on the page − the departure of the frame holding its last audible sample, in ms."""
    out = []
    for start, end, _, speech_end in regions:
        mine = [s for s in run.shown if start <= s["end_s"] * RATE + lag * FRAME < end and s["shown_at"] is not None]
        frame = (speech_end - 1) // FRAME - lag - run.first_frame  # its index in sent_at
        if mine and 0 <= frame < len(run.sent_at):
            last = max(mine, key=lambda s: s["end_s"])  # a comma pause may have cut the utterance in two
            out.append(last["shown_at"] - run.sent_at[frame])
    return out


def page_latency(recognizer, utts, endpoints, repeats: int = 1, progress=None, workers: int = 1) -> dict:
    """The bench's utterances (``live.recording``) spoken into the page, against the same recording
    through ``listen``'s path (paced like a microphone, published in this process), interleaved;
    ``workers``: as ``--concurrency``, for both."""
    why = unavailable()
    if why:
        return {"skipped": why}
    import tempfile

    import soundfile as sf
    from playwright.sync_api import sync_playwright

    from emostream.benchmarks.live import recording, run_path
    from emostream.benchmarks.runner import ratio, summarize
    from emostream.streaming.pipeline import PipelineConfig
    from emostream.streaming.segmenter import SegmenterConfig
    from emostream.web.gateway import GatewayConfig
    from emostream.web.local import running

    audio, regions = recording(utts)
    recognizer = recognizer.with_asr_context("real")
    page_ms: list[float] = []
    listen_ms: list[float] = []
    runs = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        wav = Path(tmp) / "page.wav"
        sf.write(wav, audio, RATE, subtype="PCM_16")
        for rep in range(repeats):
            listened = run_path(recognizer, utts, next(endpoints), SegmenterConfig(), workers)
            listen_ms += [round(float(ms), 1) for ms in listened["speech_end_to_publish"]]
            with running(recognizer, GatewayConfig(port=0), PipelineConfig(role="serve", workers=workers)) as server:
                run = stream_through_page(playwright, server.url(), wav, len(audio) / RATE)
            lag = frame_lag(audio, run.sent_rms)
            shown = [round(float(ms), 1) for ms in speech_end_to_shown(run, regions, lag)]
            page_ms += shown
            runs.append({"finals": len(run.finals), "listen_finals": listened["finals"], "spoken": len(regions),
                         "lost_lead_ms": lag * FRAME * 1000 // RATE, "browser_cpu": run.cpu,
                         "granted": {k: run.granted.get(k) for k in ("echoCancellation", "noiseSuppression",
                                                                     "autoGainControl", "sampleRate")}})
            if progress:
                progress(rep, runs[-1], shown)
    page, listen = summarize(page_ms), summarize(listen_ms)
    return {
        "speech_end_to_result_ms": {"page": page, "listen": listen},
        "page_over_listen": ratio(page, listen, ("median", "p95")),
        "runs": runs, "repeats": repeats,
        "note": "page: last audible sample of each utterance (from the WAV) -> its final painted in Chromium, "
                "the server in this process (serve's pipeline, same models); listen: the same recording paced "
                "into listen's pipeline -> published. Browser CPU: all Chromium processes, % of one core.",
        "raw_ms": {"page": page_ms, "listen": listen_ms},
    }
