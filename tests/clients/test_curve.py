"""ZeroMQ CURVE on the PUB socket: without the server's public key a subscriber gets nothing."""

from __future__ import annotations

import threading
import time

import pytest

from emostream.curve import CurveOptions, make_keys
from emostream.sinks.publisher import Publisher, PublisherError
from emostream.protocol import STATUS_TOPIC
from emostream.clients.subscriber import Subscriber


def _heartbeats(publisher: Publisher, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            publisher.emit(STATUS_TOPIC, {"type": "status", "seq": seq, "state": "running", "uptime_s": 0.0,
                                          "streams": {}, "latency_ms": {}})
            time.sleep(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _received(endpoint: str, seconds: float = 1.5, **curve) -> int:
    n = 0
    with Subscriber(endpoint, emotions=False, status=True, validate_messages=False, **curve) as sub:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                sub.recv(timeout_s=0.1)
                n += 1
            except TimeoutError:
                pass
    return n


def test_curve_subscriber_needs_the_server_key(tmp_path, endpoint):
    public, secret = make_keys(tmp_path, "server")
    publisher = Publisher(endpoint, curve=CurveOptions(secret_key=str(secret)))
    stop = threading.Event()
    t = _heartbeats(publisher, stop)
    try:
        assert publisher.stats()["curve"] is True
        assert _received(endpoint) == 0  # plain SUB: the handshake fails, silently
        other_public, _ = make_keys(tmp_path / "other", "server")
        assert _received(endpoint, curve_server_key=str(other_public)) == 0  # the wrong server
        assert _received(endpoint, curve_server_key=str(public)) > 5
    finally:
        stop.set()
        t.join()
        publisher.close()


def test_curve_allow_list_of_client_keys(tmp_path, endpoint):
    _, secret = make_keys(tmp_path / "srv", "server")
    public = tmp_path / "srv" / "server.key"
    allowed_pub, allowed_secret = make_keys(tmp_path / "allowed", "robot")
    _, stranger_secret = make_keys(tmp_path / "strangers", "stranger")
    publisher = Publisher(endpoint, curve=CurveOptions(secret_key=str(secret), clients=str(tmp_path / "allowed")))
    stop = threading.Event()
    t = _heartbeats(publisher, stop)
    try:
        assert _received(endpoint, curve_server_key=str(public), curve_client_key=str(stranger_secret)) == 0
        assert _received(endpoint, curve_server_key=str(public)) == 0  # an ephemeral key is not on the list
        assert _received(endpoint, curve_server_key=str(public), curve_client_key=str(allowed_secret)) > 5
    finally:
        stop.set()
        t.join()
        publisher.close()


def test_curve_key_errors_are_clear(tmp_path, endpoint):
    public, secret = make_keys(tmp_path, "server")
    with pytest.raises(PublisherError, match="does not exist"):
        Publisher(endpoint, curve=CurveOptions(secret_key=str(tmp_path / "nope.key_secret")))
    with pytest.raises(PublisherError, match="no secret key"):
        Publisher(endpoint, curve=CurveOptions(secret_key=str(public)))
    with pytest.raises(ValueError, match="not overwriting"):
        make_keys(tmp_path, "server")
    with pytest.raises(ValueError, match="does not exist"):
        Subscriber(endpoint, curve_server_key=str(tmp_path / "missing.key"))
