"""``emostream listen`` / ``subscribe`` / ``devices`` as a user runs them: real subprocesses and sockets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import zmq

from emostream.protocol import validate
from emostream.clients.subscriber import EmotionEvent, Subscriber

pytestmark = pytest.mark.slow  # `emostream listen`/`subscribe` processes, models loaded in each

CLI = [sys.executable, "-m", "emostream.cli.main"]


def run(*args, timeout=300, text=True, **kw):
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=text, timeout=timeout, **kw)
    if not text:
        proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


def clean_failure(proc, code, message):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_listen_file_fast_logs_every_utterance(dialogue, endpoint, tmp_path):
    log = tmp_path / "events.jsonl"
    proc = run("listen", "--input", f"talk={dialogue.path}", "--fast", "--quiet", "--publish", endpoint,
               "--jsonl", log, "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    emotions = [m for m in lines if m["type"] == "emotion"]
    assert [m["seq"] for m in emotions] == [1, 2, 3, 4] and all(m["transcript"] for m in emotions)
    for m in lines:
        assert m.pop("topic") == ("status" if m["type"] == "status" else "emotion.talk")
        validate(m)
    assert lines[-1]["type"] == "status" and lines[-1]["state"] == "stopped"


def test_listen_without_a_terminal_prints_one_line_per_result(dialogue, endpoint):
    proc = run("listen", "--input", dialogue.path, "--fast", "--publish", endpoint, "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.strip().splitlines()
    assert len(rows) == 4 and all(r.startswith("[dialogue #") for r in rows)
    assert "4 of 4 utterances published" in proc.stderr


def test_stdin_closed_early_publishes_what_arrived(dialogue, endpoint, tmp_path):
    cut = dialogue.audio[: int((dialogue.spans[1][0] + 0.8) * 16000)]  # ends in the middle of sentence 2
    data = (cut * 32767).astype("<i2").tobytes() + b"\x07"  # and mid-sample
    log = tmp_path / "stdin.jsonl"
    proc = run("listen", "--input", "-", "--rate", "16000", "--quiet", "--publish", endpoint, "--jsonl", log,
               "--threads", "2", input=data, text=False)
    assert proc.returncode == 0, proc.stderr
    emotions = [json.loads(x) for x in log.read_text().splitlines() if '"emotion"' in x]
    assert [m["stream_id"] for m in emotions] == ["stdin", "stdin"]


def test_sigterm_finishes_the_utterance_in_progress(dialogue, endpoint):
    with Subscriber(endpoint, timeout_s=60) as sub:
        proc = subprocess.Popen([*CLI, "listen", "--input", dialogue.path, "--quiet", "--publish", endpoint,
                                 "--threads", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = sub.recv()  # the first sentence arrives in real time
        assert isinstance(first, EmotionEvent) and first.seq == 1
        # stop in the middle of sentence 2 (stream clock of the file == wall clock since it started)
        start2, end2 = dialogue.spans[1]
        time.sleep(max(0.0, (start2 + end2) / 2 - first.end_s - 0.3))
        proc.send_signal(signal.SIGTERM)
        second = sub.recv(timeout_s=30)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert isinstance(second, EmotionEvent) and second.seq == 2 and second.end_s < end2
    assert "SIGTERM: finishing the current utterance" in err and "Traceback" not in err


def _no_input_devices() -> bool:
    from emostream.streaming.sources.microphone import list_input_devices

    try:
        return not list_input_devices()
    except Exception:  # no PortAudio host at all counts as none
        return True


NO_DEVICES = "no audio input devices found"


@pytest.mark.parametrize("args, code, message", [
    (["--device", "no-such-microphone-xyz"], 2, "no input device matches 'no-such-microphone-xyz'"),
    (["--input", "missing.wav"], 2, "no such file: missing.wav"),
    (["--input", "-"], 2, "give its sample rate with --rate"),
    (["--input", "-", "--rate", "100"], 2, "unsupported sample rate 100"),
    (["--input", "-", "--rate", "16000", "--channels", "0"], 2, "unsupported channel count 0"),
    (["--input", "bad id=x.wav"], 2, "stream id 'bad id'"),
    (["--max-utterance-s", "90"], 2, "max_utterance_s must be within"),
    (["--jsonl", "/no/such/dir/events.jsonl"], 2, "cannot write the event log"),  # checked before any device
])
def test_bad_flags_and_inputs_fail_fast_and_clearly(args, code, message):
    if args[0] == "--device" and _no_input_devices():  # a machine without a sound server: both facts, clearly
        message += ": " + NO_DEVICES
    proc = run("listen", "--quiet", *args, timeout=120, stdin=subprocess.DEVNULL)
    clean_failure(proc, code, message)


def test_corrupt_file(audio_dir):
    clean_failure(run("listen", "--input", audio_dir / "corrupt.wav", "--quiet"), 2, "cannot read audio file")


def test_publish_endpoint_in_use(dialogue, endpoint):
    blocker = zmq.Context.instance().socket(zmq.PUB)
    blocker.bind(endpoint)
    try:
        proc = run("listen", "--input", dialogue.path, "--fast", "--quiet", "--publish", endpoint)
    finally:
        blocker.close(0)
    clean_failure(proc, 2, f"cannot publish on {endpoint}")
    assert "another emostream may be publishing there" in proc.stderr


def test_subscribe_prints_events_and_times_out(dialogue, endpoint):
    sub = subprocess.Popen([*CLI, "subscribe", "--endpoint", endpoint, "--count", "4", "--timeout", "120"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # the subscriber process must be connected before results are published
    listen = run("listen", "--input", dialogue.path, "--fast", "--quiet", "--publish", endpoint, "--threads", "2")
    assert listen.returncode == 0, listen.stderr
    out, err = sub.communicate(timeout=60)
    assert sub.returncode == 0, err
    assert len(out.strip().splitlines()) == 4 and "[dialogue #4" in out
    idle = run("subscribe", "--endpoint", endpoint, "--timeout", "0.5", timeout=60)
    clean_failure(idle, 1, "no event from")


def test_devices_lists_inputs_or_says_there_are_none():
    proc = run("devices", timeout=60)
    assert "Traceback" not in proc.stderr
    if proc.returncode == 0:
        assert proc.stdout.strip()
    else:
        assert "no audio input devices" in proc.stderr or "PortAudio" in proc.stderr


def test_dialogue_system_example_reacts_to_each_utterance(dialogue, endpoint):
    example = subprocess.Popen([sys.executable, "-m", "emostream.clients.examples.dialogue_system",
                                "--endpoint", endpoint, "--count", "4", "--timeout", "120"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    listen = run("listen", "--input", dialogue.path, "--fast", "--quiet", "--publish", endpoint, "--threads", "2")
    assert listen.returncode == 0, listen.stderr
    out, err = example.communicate(timeout=60)
    assert example.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4 and all(" -> " in line and line.startswith("dialogue #") for line in lines)


def test_stream_ids_stay_unique_and_within_the_schema(tmp_path):
    from emostream.cli.listen import ListenOptions, parse_inputs

    (tmp_path / "x").mkdir()
    long = "a" * 80 + ".wav"
    for name in ("take.wav", "x/take.wav", "take-2.wav", long, "x/" + long):
        (tmp_path / name).write_bytes(b"")
    specs = parse_inputs(ListenOptions(inputs=[str(tmp_path / n) for n in
                                               ("take.wav", "x/take.wav", "take-2.wav", long, "x/" + long)]))
    ids = [s.stream_id for s in specs]
    assert len(set(ids)) == len(ids) and ids[:3] == ["take", "take-3", "take-2"]
    assert all(len(i) <= 64 for i in ids)


def test_subscribe_into_a_pipe_that_closes_early_is_quiet(dialogue, endpoint, tmp_path):
    err = tmp_path / "err.txt"
    reader = subprocess.Popen(f"{sys.executable} -m emostream.cli.main subscribe --endpoint {endpoint} "
                              f"--count 4 --timeout 120 2>{err} | head -1", shell=True, stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    listen = run("listen", "--input", dialogue.path, "--fast", "--quiet", "--publish", endpoint, "--threads", "2")
    assert listen.returncode == 0, listen.stderr
    out, _ = reader.communicate(timeout=60)
    assert out.startswith("[dialogue #1")
    assert "Traceback" not in err.read_text() and "BrokenPipe" not in err.read_text()
