"""The JetStream work queue's semantics on a real nats-server, and the pieces around it (no models)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from cluster_helpers import make_utterance as _utt

from emostream.cluster import wire
from emostream.web.gateway import FrameDecoder, StartError, StreamSpec
from emostream.cluster.link import BusError, NatsLink, NatsOptions
from emostream.cluster.nats_queue import NatsWorkQueue
from emostream.cluster.ordering import ResultOrder
from emostream.streaming.frames import SpeechEvent, Utterance


def test_wire_round_trip_keeps_audio_and_metadata():
    u = _utt(3, "call.17")
    payload, headers = wire.encode(u.__class__(**{**u.__dict__, "session": "abc"}))
    assert headers["Nats-Msg-Id"] == "abc:call.17:3"
    kind, back = wire.decode(payload, headers, delivery=2)
    assert kind == "final" and back.session == "abc" and back.delivery == 2 and back.seq == 3
    assert np.max(np.abs(back.samples - u.samples)) < 1 / 16000  # int16 on the wire
    assert abs((time.perf_counter() - back.closed_perf) - (time.time() - u.closed_wall)) < 0.05
    with pytest.raises(wire.WireError):
        wire.decode(b"\x00\x01", {"Emostream-Utterance": '{"v": 99, "rate": 16000}'})
    with pytest.raises(wire.WireError):
        wire.decode(b"\x00\x01", None)


def test_result_order_releases_in_order_once_and_late_ones_once():
    o = ResultOrder(hold_s=2.0)

    def m(seq, kind="emotion", audio=1.0):
        return {"type": kind, "stream_id": "a", "seq": seq, "session": "s", "audio_s": audio}

    seqs = lambda out: [x["seq"] for x in out]  # noqa: E731
    assert seqs(o.add(m(2), now=0)) == []  # waits for 1
    assert seqs(o.add(m(1), now=0.1)) == [1, 2]
    assert seqs(o.add(m(2), now=0.2)) == []  # a redelivered duplicate
    assert seqs(o.add(m(3, "partial"), now=0.3)) == [3]
    assert seqs(o.add(m(3, "partial", 0.5), now=0.3)) == []  # older than the last partial
    assert seqs(o.add(m(4), now=1.0)) == []  # 3 is missing (dropped? a dead worker?)
    assert seqs(o.expire(now=2.5)) == [] and seqs(o.expire(now=3.1)) == [4]
    assert seqs(o.add(m(3), now=4.0)) == [3]  # late, still once
    assert seqs(o.add(m(3), now=4.1)) == []
    assert seqs(o.add(m(1, "partial"), now=4.2)) == []  # its final went out long ago
    assert o.counters["duplicates"] == 2 and o.counters["late"] == 1 and o.counters["gaps"] == 1
    other = {"type": "emotion", "stream_id": "a", "seq": 1, "session": "t"}  # a new session starts at 1
    assert seqs(o.add(other)) == [1]
    # a worker says seq 6 is gone: 7 goes out without waiting hold_s
    assert seqs(o.add(m(7), now=5.0)) == []
    assert seqs(o.add(m(5), now=5.0)) == [5]
    assert seqs(o.add({**m(6), "type": "gone", "outcome": "dropped"}, now=5.1)) == [7]
    assert o.waiting() == 0


def test_start_message_and_frame_decoding():
    assert StreamSpec.parse('{"stream_id": "c1", "rate": 8000, "format": "mulaw"}').channels == 1
    with pytest.raises(StartError, match="stream_id"):
        StreamSpec.parse('{"stream_id": "../x", "rate": 8000}')
    # s16le stereo at 48 kHz, a sample split across frames: nothing lost, downmixed, resampled
    spec = StreamSpec("c", 48000, "s16le", 2)
    t = np.arange(48000) / 48000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    pcm = (np.stack([tone, tone], axis=1) * 32767).astype("<i2").tobytes()
    dec = FrameDecoder(spec)
    out = np.concatenate([dec(pcm[i:i + 1001]) for i in range(0, len(pcm), 1001)] + [dec(b"", last=True)])
    assert abs(len(out) - 16000) <= 32 and 0.3 < np.abs(out[2000:14000]).max() < 0.55
    # G.711 u-law: a few reference codes (ITU-T G.711 table) and a full-scale tone
    mu = FrameDecoder(StreamSpec("m", 16000, "mulaw", 1))
    decoded = mu(bytes([0xFF, 0x7F, 0x80, 0x00]))
    assert decoded[0] == 0 and decoded[1] == 0 and decoded[2] > 0.97 and decoded[3] < -0.97


@pytest.fixture(scope="module")
def link(nats_server):
    link = NatsLink(NatsOptions(url=nats_server.url, name="queue-test"))
    yield link
    link.close()


def _drain(q: NatsWorkQueue) -> None:
    while (item := q.get(timeout=0.3)) is not None:
        if isinstance(item, Utterance):
            q.task_done(item, "published")


def test_failed_utterance_is_retried_then_counted_failed(link):
    config = wire.BusConfig(ack_wait_s=5.0, max_deliver=2)
    producer = NatsWorkQueue(link, config, role="produce", session="retry")
    consumer = NatsWorkQueue(link, config, role="consume", partials=False)
    _drain(consumer)
    producer.put(_utt(1))
    assert producer.flush(5)
    first = consumer.get(timeout=2)
    assert isinstance(first, Utterance) and first.delivery == 1 and not consumer.is_last_try(first)
    consumer.task_done(first, "failed")  # nak: another try
    second = consumer.get(timeout=3)
    assert second is not None and second.seq == 1 and second.delivery == 2 and consumer.is_last_try(second)
    consumer.task_done(second, "failed")  # the last try: terminated, not redelivered
    assert consumer.get(timeout=1.5) is None
    assert consumer.counters["naks"] == 1 and consumer.counters["terminated"] == 1
    # a repeated publish (a reconnect) is stored once
    producer.put(_utt(2))
    producer.put(_utt(2))
    assert producer.flush(5)
    got = [consumer.get(timeout=1.0) for _ in range(2)]
    assert [u.seq for u in got if u is not None] == [2] and producer.counters["duplicates"] == 1
    consumer.task_done(got[0], "published")
    consumer.close()
    producer.close()


def test_a_worker_sees_the_backlog_on_the_bus_and_takes_a_batch_acking_each(link):
    """The worker's take size reads ``len(queue)``: on the bus, the finals still waiting there (the
    fetched message's num_pending), so a worker batches when the bus is behind, as in process."""
    producer = NatsWorkQueue(link, wire.BusConfig(), role="produce", session="batch")
    consumer = NatsWorkQueue(link, wire.BusConfig(), role="consume", partials=False)
    _drain(consumer)
    assert len(consumer) == 0
    for seq in range(1, 7):
        producer.put(_utt(seq))
    assert producer.flush(5)
    first = consumer.get_batch(1, timeout=2)
    assert [u.seq for u in first] == [1] and len(consumer) == 5
    rest = consumer.get_batch(8, timeout=2)
    assert [u.seq for u in rest] == [2, 3, 4, 5, 6] and len(consumer) == 0
    assert consumer.stats()["held"] == 6 and consumer.stats()["depth"] == 0
    for u in first + rest:
        consumer.task_done(u, "published")  # each acked on its own
    assert consumer.stats()["held"] == 0 and consumer.counters["acked"] == 6
    assert consumer.get_batch(8, timeout=0.3) == [] and len(consumer) == 0
    consumer.close()
    producer.close()


def test_stale_utterances_are_dropped_and_counted_and_partials_wait_for_finals(link):
    config = wire.BusConfig(max_lag_s=1.0)
    producer = NatsWorkQueue(link, config, role="produce", session="lag")
    consumer = NatsWorkQueue(link, config, role="consume", partials=True)
    _drain(consumer)
    dropped = []
    consumer.on_drop = lambda u, why: dropped.append((u.seq, why))
    producer_dropped = []
    producer.on_drop = lambda u, why: producer_dropped.append((u.seq, why))
    producer.put(_utt(1, age_s=5.0))  # already too old to be worth sending: the producer drops it
    producer.put(_utt(2))
    assert producer.flush(5)
    time.sleep(1.2)  # utterance 2 is now older than max_lag on the server: the backlog drains to the present
    assert consumer.get(timeout=1) is None
    assert [s for s, _ in producer_dropped] == [1] and "not sent within --max-lag" in producer_dropped[0][1]
    assert [s for s, _ in dropped] == [2] and "max-lag" in dropped[0][1]
    assert consumer.counters["terminated"] == 1
    producer.put_wait(_utt(5, age_s=5.0))  # not live (a file read fast): never dropped for lag
    assert producer.flush(5)
    late = consumer.get(timeout=1)
    assert isinstance(late, Utterance) and late.seq == 5 and not late.live
    consumer.task_done(late, "published")

    class Job:
        kind, utterance = "partial", _utt(3, n=4000)

    producer.offer("s", Job())
    producer.put(_utt(4))
    assert producer.flush(5)
    time.sleep(0.2)
    first, second = consumer.get(timeout=1), consumer.get(timeout=1)
    assert isinstance(first, Utterance) and first.seq == 4  # the final first
    assert isinstance(second, SpeechEvent) and second.kind == "progress" and second.seq == 3
    consumer.task_done(first, "published")
    consumer.close()
    producer.close()


def test_utterance_whose_workers_all_died_is_counted_failed_and_deleted(link):
    """A worker that takes an utterance and dies (here: a bare pull that never acks) on the last
    allowed delivery: NATS reports max deliveries, a live worker counts it failed and removes it."""
    config = wire.BusConfig(ack_wait_s=1.0, max_deliver=1)
    producer = NatsWorkQueue(link, config, role="produce", session="poison")
    watcher = NatsWorkQueue(link, config, role="consume", partials=False)
    _drain(watcher)
    failed = []
    watcher.on_failed = lambda u, why: failed.append((u.stream_id, u.seq, why))

    async def die_holding_it():
        sub = await link.js.pull_subscribe_bind(durable=wire.WORKERS, stream=wire.UTT_STREAM)
        msgs = await sub.fetch(batch=1, timeout=3)
        return len(msgs)

    producer.put(_utt(7, "poison"))
    assert producer.flush(5)
    assert link.call(die_holding_it()) == 1
    deadline = time.monotonic() + 10
    while not failed and time.monotonic() < deadline:
        time.sleep(0.1)
    assert failed and failed[0][:2] == ("poison", 7) and "no result" in failed[0][2]
    info = link.call(link.js.stream_info(wire.UTT_STREAM))
    assert info.state.messages == 0  # deleted, not left to fill the backlog
    assert watcher.counters["max_deliveries"] == 1
    watcher.close()
    producer.close()


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(BusError, match="cannot reach the NATS server"):
        NatsLink(NatsOptions(url="nats://127.0.0.1:9", connect_timeout_s=1.0))


def test_a_restarted_process_is_waited_for_by_its_own_log_lines(tmp_path):
    """Processes appends a restarted name's output to the same log; waiting for a line must not be
    satisfied by the previous run's (the cluster bench once measured a worker still loading)."""
    from cluster_helpers import Processes

    procs = Processes(tmp_path)
    procs.start("x", "devices", "--help")
    procs.wait_log("x", "List the input devices", timeout=60)
    procs.procs["x"].wait(30)
    procs.start("x", "bench", "--help")
    with pytest.raises(RuntimeError, match="exited"):
        procs.wait_log("x", "List the input devices", timeout=60)
    assert "List the input devices" in procs.log("x")  # the whole log is still there
