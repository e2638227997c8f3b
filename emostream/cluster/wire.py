"""How utterances and results travel on NATS: subjects, JetStream streams, and the utterance encoding.

Subjects (``<sid>`` is the stream id):
  emostream.utt.<sid>       closed utterances, JetStream work queue EMOSTREAM_UTT (file storage)
  emostream.early.<sid>     the open utterance so far, for a partial; EMOSTREAM_EARLY keeps only
                            the newest per stream (memory storage, short max age): best effort
  emostream.emotion.<sid>   results, emotion-1 schema (core NATS: as live as ZeroMQ PUB)
  emostream.partial.<sid>   partial results, partial-1 schema
  emostream.status.<name>   each process's heartbeat, status-1 schema

An utterance is 16 kHz mono signed 16-bit little-endian PCM in the payload, its metadata as JSON
in the ``Emostream-Utterance`` header, and ``Nats-Msg-Id: <session>:<stream_id>:<seq>`` so a
publish repeated after a reconnect is stored once (JetStream de-duplication).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any


from emostream.streaming.audio import SAMPLE_RATE
from emostream.streaming.frames import Utterance
from emostream.streaming.pcm import from_s16le, to_s16le

PREFIX = "emostream"
UTT_STREAM = "EMOSTREAM_UTT"
EARLY_STREAM = "EMOSTREAM_EARLY"
WORKERS = "workers"  # the one durable consumer every worker binds (a work queue allows one per subject)
EARLY_WORKERS = "workers-early"
META_HEADER = "Emostream-Utterance"
BACKLOG_FULL = 10077  # JetStream: maximum messages per subject exceeded (discard new per subject)
WIRE_VERSION = 1


def utterance_subject(stream_id: str) -> str:
    return f"{PREFIX}.utt.{stream_id}"


def early_subject(stream_id: str) -> str:
    return f"{PREFIX}.early.{stream_id}"


def bus_subject(topic: str) -> str:
    """A pipeline topic (``emotion.<sid>``, ``partial.<sid>``, ``status``) on the bus."""
    return f"{PREFIX}.{topic}"


def message_id(utterance: Utterance) -> str:
    return f"{utterance.session}:{utterance.stream_id}:{utterance.seq}"


@dataclass(frozen=True)
class BusConfig:
    """The JetStream side of the queue; every process declares the same streams (idempotent)."""

    backlog_per_stream: int = 64  # utterances stored per stream before a publish is refused (and counted)
    ack_wait_s: float = 10.0  # a killed worker's utterance goes to another worker after this long
    max_deliver: int = 3  # attempts per utterance, then it is counted failed
    max_lag_s: float = 10.0  # an utterance older than this when a worker takes it is dropped (drop-oldest)
    partial_max_age_s: float = 2.0  # a partial snapshot older than this is skipped
    duplicate_window_s: float = 120.0
    replicas: int = 1  # copies of each stream on a NATS cluster (3: survives the loss of one server)
    ready_timeout_s: float = 30.0  # a cluster just started elects its JetStream leader first: wait this long

    def __post_init__(self) -> None:
        for name in ("ack_wait_s", "max_lag_s", "partial_max_age_s", "duplicate_window_s", "ready_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.backlog_per_stream < 1 or self.max_deliver < 1:
            raise ValueError("backlog_per_stream and max_deliver must be at least 1")
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"replicas must be 1 to 5 (JetStream's limit), got {self.replicas}")


def encode(utterance: Utterance, kind: str = "final") -> tuple[bytes, dict[str, str]]:
    pcm = to_s16le(utterance.samples)
    meta = {"v": WIRE_VERSION, "kind": kind, "stream_id": utterance.stream_id, "seq": utterance.seq,
            "session": utterance.session, "start_s": utterance.start_s, "end_s": utterance.end_s,
            "closed_wall": utterance.closed_wall, "forced_cut": utterance.forced_cut,
            "turn_fragments": utterance.turn_fragments, "turn_first_seq": utterance.turn_first_seq,
            "live": utterance.live, "rate": SAMPLE_RATE}
    headers = {META_HEADER: json.dumps(meta, separators=(",", ":"))}
    if kind == "final":
        headers["Nats-Msg-Id"] = message_id(utterance)
    return pcm, headers


class WireError(ValueError):
    """A message on an utterance subject that is not one (foreign publisher, other version)."""


def decode(payload: bytes, headers: dict[str, str] | None, delivery: int = 1) -> tuple[str, Utterance]:
    """-> (kind, Utterance). ``closed_perf`` is mapped onto this process's perf_counter from the
    wall clock, so latencies across machines are as good as their clock sync."""
    try:
        meta: dict[str, Any] = json.loads((headers or {})[META_HEADER])
        if meta.get("v") != WIRE_VERSION or meta.get("rate") != SAMPLE_RATE:
            raise WireError(f"unsupported utterance encoding {meta.get('v')!r} at {meta.get('rate')!r} Hz")
        if len(payload) % 2:
            raise WireError("odd number of PCM bytes")
        samples = from_s16le(payload)
        closed_wall = float(meta["closed_wall"])
        utterance = Utterance(
            stream_id=str(meta["stream_id"]), seq=int(meta["seq"]), start_s=float(meta["start_s"]),
            end_s=float(meta["end_s"]), samples=samples, closed_wall=closed_wall,
            closed_perf=time.perf_counter() - (time.time() - closed_wall), forced_cut=bool(meta["forced_cut"]),
            turn_fragments=int(meta["turn_fragments"]), turn_first_seq=meta.get("turn_first_seq"),
            session=meta.get("session"), delivery=delivery, live=bool(meta.get("live", True)))
        return str(meta["kind"]), utterance
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"not an emostream utterance: {exc}") from exc


NO_JETSTREAM = "no JetStream on that server (start it with nats-server -js …)"
PLACEMENT_WAIT_S = 10.0  # err 10005 for longer than this: too few servers for --replicas, not a late one


class _Settling:
    """One deadline for the whole setup, and the JetStream answers that mean "not yet": a cluster
    that has just started (or lost its leader) has no meta leader, or has not heard from every
    server, for a few seconds. Anything else is raised at once."""

    def __init__(self, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s
        self.placement_since: float | None = None

    async def run(self, call):
        import asyncio

        from nats.errors import TimeoutError as RequestTimeout
        from nats.js.errors import BadRequestError, ServiceUnavailableError

        while True:
            try:
                return await call()
            except ServiceUnavailableError as exc:
                if exc.code is None:  # nats-py's translation of "no responders": JetStream is off
                    raise RuntimeError(NO_JETSTREAM) from exc
                if exc.err_code not in (None, 10008) or time.monotonic() > self.deadline:
                    raise  # 10008: JetStream temporarily unavailable (no leader yet)
            except RequestTimeout:
                if time.monotonic() > self.deadline:
                    raise
            except BadRequestError as exc:
                if exc.err_code != 10005:  # no suitable peers for placement (yet?)
                    raise
                now = time.monotonic()
                self.placement_since = self.placement_since or now
                if now - self.placement_since > PLACEMENT_WAIT_S or now > self.deadline:
                    raise RuntimeError(f"{exc.description} (err 10005): --replicas asks for more servers than "
                                       "the NATS cluster has up") from exc
            await asyncio.sleep(0.5)


async def ensure_streams(js, config: BusConfig, consumer: bool = False) -> None:
    """Create the streams and consumers where missing. The workers own the consumer's settings
    (``consumer=True``: their ack wait and max deliveries are applied); a producer started with
    other defaults does not change them. Streams keep the settings (backlog, replicas) of the
    process that created them first."""
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        DiscardPolicy,
        RetentionPolicy,
        StorageType,
        StreamConfig,
    )
    from nats.js.errors import BadRequestError, NotFoundError

    streams = [
        StreamConfig(name=UTT_STREAM, subjects=[f"{PREFIX}.utt.>"], retention=RetentionPolicy.WORK_QUEUE,
                     storage=StorageType.FILE, max_msgs_per_subject=config.backlog_per_stream,
                     discard=DiscardPolicy.NEW, discard_new_per_subject=True, num_replicas=config.replicas,
                     max_age=max(600.0, config.duplicate_window_s), duplicate_window=config.duplicate_window_s),
        StreamConfig(name=EARLY_STREAM, subjects=[f"{PREFIX}.early.>"], retention=RetentionPolicy.WORK_QUEUE,
                     storage=StorageType.MEMORY, max_msgs_per_subject=1, discard=DiscardPolicy.OLD,
                     num_replicas=config.replicas, max_age=max(5.0, 2 * config.partial_max_age_s),
                     duplicate_window=1.0),
    ]
    settle = _Settling(config.ready_timeout_s)
    for sc in streams:
        try:
            await settle.run(lambda: js.stream_info(sc.name))
        except NotFoundError:
            try:
                await settle.run(lambda: js.add_stream(sc))
            except BadRequestError as exc:
                if getattr(exc, "err_code", None) != 10058:  # 10058: another process made it meanwhile
                    raise
    if not consumer:
        for stream, name in ((UTT_STREAM, WORKERS), (EARLY_STREAM, EARLY_WORKERS)):
            try:
                await settle.run(lambda: js.consumer_info(stream, name))
            except NotFoundError:
                break
        else:
            return
    await settle.run(lambda: js.add_consumer(UTT_STREAM, ConsumerConfig(
        durable_name=WORKERS, ack_policy=AckPolicy.EXPLICIT, ack_wait=config.ack_wait_s,
        max_deliver=config.max_deliver, max_ack_pending=1000)))
    await settle.run(lambda: js.add_consumer(EARLY_STREAM, ConsumerConfig(
        durable_name=EARLY_WORKERS, ack_policy=AckPolicy.EXPLICIT, ack_wait=5.0, max_deliver=1,
        max_ack_pending=1000)))
