"""The cluster end to end on loopback: nats-server, two workers, a gateway, a bridge, real speech.

Models load in each worker process (about 20 s on 2 cores), so one cluster serves every test here.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time

import jiwer
import pytest
from cluster_helpers import free_port, wait_port

from emostream.protocol import validate
from emostream.clients.subscriber import EmotionEvent, PartialEvent, Subscriber
from emostream.cluster import wire
from emostream.cluster.client import stream_file
from emostream.cluster.link import NatsLink, NatsOptions

pytestmark = pytest.mark.slow  # the cluster with workers (processes, models)

ACK_WAIT = 3.0


@pytest.fixture(scope="module")
def cluster(nats_server, processes, dialogue):
    bus = ["--nats", nats_server.url, "--ack-wait", str(ACK_WAIT)]
    for name in ("w1", "w2"):
        processes.start(name, "worker", "--name", name, "--threads", "1", "--status-interval", "0.5", *bus)
    port = free_port()
    processes.start("gateway", "gateway", "--listen", f"127.0.0.1:{port}", *bus)
    zmq_endpoint = f"tcp://127.0.0.1:{free_port()}"
    processes.start("bridge", "bridge", "--publish", zmq_endpoint, *bus)
    for name in ("w1", "w2"):
        processes.wait_log(name, "taking utterances", timeout=240)
    processes.wait_log("gateway", "/v1/stream")
    processes.wait_log("bridge", "->")
    link = NatsLink(NatsOptions(url=nats_server.url, name="test"))
    yield {"url": f"ws://127.0.0.1:{port}/v1/stream", "port": port, "zmq": zmq_endpoint, "link": link,
           "bus": bus}
    link.close()


class BusCollector:
    """What a plain NATS subscriber sees on emostream.<topic>.<sid>."""

    def __init__(self, link: NatsLink, stream_id: str, topic: str = "emotion") -> None:
        self.link, self.messages = link, []

        async def on(msg) -> None:
            self.messages.append(json.loads(msg.data))

        self.sub = link.call(link.nc.subscribe(wire.bus_subject(f"{topic}.{stream_id}"), cb=on))

    def close(self) -> None:
        self.link.call(self.sub.unsubscribe())


def _zmq_events(endpoint: str, stream_id: str, stop: threading.Event, out: list) -> threading.Thread:
    def run() -> None:
        with Subscriber(endpoint, streams=[stream_id], partials=True, timeout_s=None) as sub:
            while not stop.is_set():
                try:
                    out.append(sub.recv(timeout_s=0.2))
                except TimeoutError:
                    pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _wer(finals, sentences) -> float:
    norm = lambda s: " ".join(w.strip(".,!?").lower() for w in s.split())  # noqa: E731
    return jiwer.wer([norm(s) for s in sentences], [norm(m["transcript"]) for m in finals])


def test_stream_through_gateway_workers_bus_and_bridge(cluster, dialogue):
    stop, zmq_seen = threading.Event(), []
    zmq_thread = _zmq_events(cluster["zmq"], "desk", stop, zmq_seen)
    bus = BusCollector(cluster["link"], "desk")
    heartbeats = BusCollector(cluster["link"], ">", topic="status")
    time.sleep(0.5)  # ZeroMQ slow joiner
    result = asyncio.run(stream_file(cluster["url"], str(dialogue.path), "desk"))
    time.sleep(1.0)
    stop.set()
    zmq_thread.join(5)
    bus.close()
    heartbeats.close()
    for m in heartbeats.messages:  # every process's heartbeat on the bus is a valid status message
        validate(m)
    roles = {m["role"] for m in heartbeats.messages}
    assert {"worker", "gateway"} <= roles
    worker_status = [m for m in heartbeats.messages if m["role"] == "worker"][-1]
    assert worker_status["worker"] in ("w1", "w2") and worker_status["queue"]["bus"]["role"] == "consume"

    assert result.close_code == 1000, result.close_reason
    n = len(dialogue.sentences)
    assert result.summary == {"type": "end", "stream_id": "desk", "session": result.session, "utterances": n,
                              "finals": n, "dropped": 0, "failed": 0, "missing": 0}
    # on the socket: every utterance once, in order, schema-valid, the words right
    assert [m["seq"] for m in result.finals] == list(range(1, n + 1))
    for m in result.finals + result.partials:
        validate(m)
    assert all(m["session"] == result.session and m["worker"]["id"] in ("w1", "w2") for m in result.finals)
    assert _wer(result.finals, dialogue.sentences) < 0.25
    assert result.partials, "partials were on (0.5 s) and every sentence is over 2 s"
    # on the bus: each result once (no worker died)
    assert sorted(m["seq"] for m in bus.messages if m["session"] == result.session) == list(range(1, n + 1))
    # through the bridge on ZeroMQ: once each, in order, partials of a seq before its final
    finals = [e for e in zmq_seen if isinstance(e, EmotionEvent) and e.message["session"] == result.session]
    assert [e.seq for e in finals] == list(range(1, n + 1))
    final_at = {e.seq: zmq_seen.index(e) for e in finals}
    for e in zmq_seen:
        if isinstance(e, PartialEvent) and e.message.get("session") == result.session:
            assert zmq_seen.index(e) < final_at[e.seq]


def test_listen_edge_mode_enqueues_and_shows_the_workers_results(cluster, nats_server, processes, dialogue,
                                                                 tmp_path):
    """`listen --nats`: segmentation here, recognition on the workers, results back in this
    process's sinks (here a JSONL log), no models loaded."""
    import subprocess
    import sys

    log = tmp_path / "edge.jsonl"
    proc = subprocess.run([sys.executable, "-m", "emostream.cli.main", "listen", "--nats", nats_server.url,
                           "--input", f"edge={dialogue.path}", "--fast", "--quiet", "--jsonl", str(log),
                           "--publish", f"tcp://127.0.0.1:{free_port()}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    finals = [m for m in lines if m.get("type") == "emotion"]
    assert [m["seq"] for m in finals] == list(range(1, len(dialogue.sentences) + 1))
    for m in finals:
        validate({k: v for k, v in m.items() if k != "topic"})
    assert _wer(finals, dialogue.sentences) < 0.25
    stopped = lines[-1]
    assert stopped["type"] == "status" and stopped["role"] == "edge"
    assert stopped["streams"]["edge"]["published"] == len(dialogue.sentences)
    assert "loading models" not in proc.stderr


def _consumer(link: NatsLink):
    return link.call(link.js.consumer_info(wire.UTT_STREAM, wire.WORKERS))


def test_killed_worker_utterance_is_redelivered_and_published_once(cluster, processes, dialogue):
    link = cluster["link"]
    w1, w2 = processes.procs["w1"], processes.procs["w2"]
    for p in (w1, w2):
        os.kill(p.pid, signal.SIGSTOP)  # no worker takes anything until we say
    time.sleep(0.5)
    holder = {}
    out = {}

    def client() -> None:
        out["result"] = asyncio.run(stream_file(cluster["url"], str(dialogue.path), "killtest"))

    t = threading.Thread(target=client)
    t.start()
    try:
        end = time.monotonic() + 30
        while _consumer(link).num_pending < 1:  # the first utterance waits on the server
            assert time.monotonic() < end, "no utterance reached the work queue"
            time.sleep(0.02)
        os.kill(w1.pid, signal.SIGCONT)  # w1 alone takes it ...
        while _consumer(link).num_ack_pending < 1:
            assert time.monotonic() < end, "w1 took nothing"
            time.sleep(0.003)
        w1.kill()  # ... and dies holding it (recognition takes > 100 ms; we look every few ms)
        w1.wait(5)
        holder["pending"] = _consumer(link).num_ack_pending
    finally:
        os.kill(w2.pid, signal.SIGCONT)
        if w1.poll() is None:
            os.kill(w1.pid, signal.SIGCONT)
    t.join(90)
    result = out["result"]
    assert holder["pending"] == 1, "w1 finished before it was killed; the race this test needs was lost"
    assert result.close_code == 1000, result.close_reason
    seqs = sorted(m["seq"] for m in result.finals)
    assert seqs == list(range(1, len(dialogue.sentences) + 1)), "each utterance exactly once"
    redelivered = [m for m in result.finals if m["worker"]["delivery"] > 1]
    assert len(redelivered) == 1 and redelivered[0]["worker"]["id"] == "w2"
    assert redelivered[0]["timings_ms"]["queue_wait"] >= ACK_WAIT * 1000 * 0.9  # it waited one ack_wait


def test_workers_and_gateway_survive_a_nats_restart(cluster, processes, nats_server, speech, tmp_path):
    import soundfile as sf

    wav = tmp_path / "happy.wav"
    sf.write(wav, speech["happy"], 16000)
    nats_server.stop()
    time.sleep(1.0)
    nats_server.start()
    processes.wait_log("w2", "reconnected to NATS", timeout=30)
    processes.wait_log("gateway", "reconnected to NATS", timeout=30)
    result = asyncio.run(stream_file(cluster["url"], str(wav), "after-restart", realtime=False))
    assert result.close_code == 1000, result.close_reason
    assert [m["seq"] for m in result.finals] == [1]
    assert "happy" in result.finals[0]["transcript"].lower()


def test_gateway_shutdown_finishes_open_streams_with_their_results(cluster, processes, nats_server, dialogue):
    """SIGTERM to a gateway with a client mid-sentence: the client gets the results of what it said
    (the open utterance included), the account, then close 1001; nothing is missing."""
    port = free_port()
    processes.start("gw-term", "gateway", "--listen", f"127.0.0.1:{port}", *cluster["bus"])
    processes.wait_log("gw-term", "/v1/stream")
    out = {}

    def client() -> None:
        out["result"] = asyncio.run(stream_file(f"ws://127.0.0.1:{port}/v1/stream", str(dialogue.path), "term"))

    t = threading.Thread(target=client)
    t.start()
    time.sleep(5.5)  # the first sentence is done, the second is being spoken
    processes.procs["gw-term"].send_signal(signal.SIGTERM)
    t.join(60)
    processes.procs["gw-term"].wait(30)
    result = out["result"]
    assert result.close_code == 1001, result.close_reason
    assert result.summary is not None and result.summary["missing"] == 0
    assert result.summary["finals"] == result.summary["utterances"] >= 2
    assert [m["seq"] for m in result.finals] == list(range(1, result.summary["utterances"] + 1))
    assert processes.procs["gw-term"].returncode == 0


def test_killed_gateway_client_sees_the_close_and_reconnects(cluster, processes, dialogue):
    from websockets.exceptions import ConnectionClosed

    out = {}

    def client() -> None:
        try:
            out["result"] = asyncio.run(stream_file(cluster["url"], str(dialogue.path), "robot"))
        except ConnectionClosed as exc:
            out["closed"] = exc

    t = threading.Thread(target=client)
    t.start()
    time.sleep(4.0)  # the first sentence is out, the second is being spoken
    processes.procs["gateway"].kill()
    processes.procs["gateway"].wait(5)
    t.join(30)
    result = out.get("result")
    assert result is not None and result.close_code == 1006  # abnormal: no close frame from a dead gateway
    processes.start("gateway", "gateway", "--listen", f"127.0.0.1:{cluster['port']}", *cluster["bus"])
    wait_port(cluster["port"], timeout=30)
    again = asyncio.run(stream_file(cluster["url"], str(dialogue.path), "robot", realtime=False))
    assert again.close_code == 1000 and again.session != result.session
    assert [m["seq"] for m in again.finals] == list(range(1, len(dialogue.sentences) + 1))


def test_a_stopped_worker_exits_cleanly(cluster, processes):
    """SIGTERM (as systemd or Kubernetes stop a worker): it finishes what it holds and exits 0, its log
    free of tracebacks (a consumer once tried to flush a producer's outbox it does not have)."""
    worker = processes.procs["w2"]
    assert worker.poll() is None
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, processes.log("w2")[-2000:]
    assert "Traceback" not in processes.log("w2"), processes.log("w2")[-2000:]
