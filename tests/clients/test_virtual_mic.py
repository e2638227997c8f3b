"""The microphone path, unmodified, on a PulseAudio null sink: `paplay` into the sink is what
sounddevice records from the default input (its monitor). `.ci/run` starts that server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from services import unavailable

from emostream.clients.subscriber import EmotionEvent, StatusEvent, Subscriber

pytestmark = pytest.mark.slow  # the virtual microphone, in real time

CLI = [sys.executable, "-m", "emostream.cli.main"]
SINK = "vmic"


def _pactl(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, env=env)


@pytest.fixture(scope="module")
def virtual_mic():
    if not shutil.which("pactl") or not shutil.which("paplay"):
        unavailable("pulseaudio-utils not installed (.ci/run installs pulseaudio and starts a virtual microphone)")
    sinks = _pactl("list", "short", "sinks")
    if sinks.returncode != 0 or SINK not in sinks.stdout:
        unavailable(f"no PulseAudio server with a null sink '{SINK}' (.ci/run starts one: pulseaudio -D -n "
                    f"--load='module-null-sink sink_name={SINK}' --load=module-native-protocol-unix)")
    if _pactl("get-default-source").stdout.strip() != f"{SINK}.monitor":
        unavailable(f"the default source is not {SINK}.monitor (pactl set-default-source {SINK}.monitor)")
    return SINK


def wait_for_status(sub: Subscriber, timeout: float = 120) -> StatusEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = sub.recv(timeout_s=timeout)
        if isinstance(event, StatusEvent):
            return event
    raise TimeoutError("listen never published a heartbeat")


def test_listen_on_the_virtual_microphone_publishes_one_result_per_sentence(virtual_mic, dialogue, endpoint):
    with Subscriber(endpoint, status=True, timeout_s=120) as sub:
        proc = subprocess.Popen([*CLI, "listen", "--quiet", "--publish", endpoint, "--status-interval", "0.5",
                                 "--threads", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            status = wait_for_status(sub)  # models loaded, microphone open
            assert status.streams["mic"]["source"].startswith("microphone")
            subprocess.run(["paplay", f"--device={virtual_mic}", str(dialogue.path)], check=True, timeout=120)
            events = []
            deadline = time.monotonic() + 60
            while len(events) < len(dialogue.sentences) and time.monotonic() < deadline:
                event = sub.recv(timeout_s=60)
                if isinstance(event, EmotionEvent):
                    events.append(event)
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert [e.seq for e in events] == list(range(1, len(dialogue.sentences) + 1)), [e.transcript for e in events]
    assert all(e.stream_id == "mic" and e.transcript for e in events)
    gaps = [b.start_s - a.end_s for a, b in zip(events, events[1:])]
    assert all(g >= 0 for g in gaps)


def test_a_microphone_that_disappears_ends_listen_with_a_clear_message(virtual_mic, dialogue, endpoint, tmp_path):
    """With --exit-on-device-loss, a private PulseAudio server killed under a running `listen`:
    clean exit 1, no hang."""
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(tmp_path / "pulse")}
    started = subprocess.run(["pulseaudio", "-D", "-n", "--exit-idle-time=-1",
                              "--load=module-null-sink sink_name=gone", "--load=module-native-protocol-unix"],
                             env=env, capture_output=True, text=True, timeout=30)
    if started.returncode != 0:
        unavailable(f"could not start a second PulseAudio server: {started.stderr.strip()[:200]}")
    try:
        with Subscriber(endpoint, status=True, timeout_s=120) as sub:
            proc = subprocess.Popen([*CLI, "listen", "--quiet", "--publish", endpoint, "--status-interval", "0.5",
                                     "--threads", "2", "--exit-on-device-loss"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env)
            wait_for_status(sub)
            subprocess.run(["pulseaudio", "-k"], env=env, timeout=30)
            out, err = proc.communicate(timeout=60)
    finally:
        subprocess.run(["pulseaudio", "-k"], env=env, capture_output=True, timeout=30)
    assert proc.returncode == 1, err
    assert "stopped delivering audio" in err and "Traceback" not in err


def _private_pulse(env) -> subprocess.CompletedProcess:
    return subprocess.run(["pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--load=module-null-sink sink_name=gone",
                           "--load=module-native-protocol-unix"], env=env, capture_output=True, text=True, timeout=30)


def test_a_microphone_that_vanishes_is_retried_and_listen_carries_on(virtual_mic, dialogue, endpoint, tmp_path):
    """The default: the sound server dies under `listen`; status says 'retrying' and the process
    stays up; the server comes back, the microphone is reopened, and speech is recognized again."""
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(tmp_path / "pulse")}
    if _private_pulse(env).returncode != 0:
        unavailable("could not start a second PulseAudio server")
    proc = None
    try:
        with Subscriber(endpoint, status=True, timeout_s=120) as sub:
            proc = subprocess.Popen([*CLI, "listen", "--quiet", "--publish", endpoint, "--status-interval", "0.5",
                                     "--threads", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env)
            wait_for_status(sub)
            subprocess.run(["pulseaudio", "-k"], env=env, timeout=30)
            deadline = time.monotonic() + 30
            while (status := wait_for_status(sub)).streams["mic"]["state"] != "retrying":
                assert time.monotonic() < deadline, "status never said retrying"
            assert "stopped delivering audio" in status.streams["mic"]["error"] and proc.poll() is None
            assert _private_pulse(env).returncode == 0
            while (status := wait_for_status(sub)).streams["mic"]["state"] != "running":
                assert time.monotonic() < deadline + 30, "the microphone never came back"
            assert status.streams["mic"]["source_counters"]["reopened"] == 1
            assert status.streams["mic"]["error"] is None
            subprocess.run(["paplay", "--device=gone", str(dialogue.path)], env=env, check=True, timeout=120)
            events, deadline = [], time.monotonic() + 60
            while len(events) < len(dialogue.sentences) and time.monotonic() < deadline:
                event = sub.recv(timeout_s=60)
                if isinstance(event, EmotionEvent):
                    events.append(event)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        subprocess.run(["pulseaudio", "-k"], env=env, capture_output=True, timeout=30)
    assert proc.returncode == 0, err
    assert "retrying until it is back" in err and "is back" in err and "Traceback" not in err
    assert len(events) == len(dialogue.sentences), [e.transcript for e in events]


def test_a_reader_that_falls_behind_loses_counted_blocks_not_the_callback(virtual_mic):
    """The PortAudio callback never blocks: with nobody reading, its small queue fills and the
    overflow is counted; reading afterwards still works and the stream clock keeps tiling."""
    import threading

    from emostream.streaming.sources import MicrophoneSource

    source = MicrophoneSource(None, "m", block_ms=20, queue_seconds=0.1)  # room for 5 blocks
    try:
        deadline = time.monotonic() + 10  # nobody reads: blocks pile up (50 a second) until the queue is full
        while not source.counters.get("dropped_blocks") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        chunks = list(source.chunks(stop))
    finally:
        source.close()
    assert source.counters.get("dropped_blocks", 0) >= 10
    assert chunks and all(b.start == a.end for a, b in zip(chunks, chunks[1:]))
