"""Typed ZeroMQ subscriber for emostream events.

    from emostream.clients.subscriber import Subscriber
    with Subscriber("tcp://127.0.0.1:5556", timeout_s=30) as sub:
        for event in sub:                      # ends after 30 s without a message
            print(event.stream_id, event.label, event.confidence, event.transcript)

``Subscriber(..., partials=True)`` also yields ``PartialEvent``s: the utterance so far while it is
spoken (``stable`` words will not change, ``unstable`` may), always before that seq's final
``EmotionEvent``. Messages are validated against the schema; ones that do not match (another major version, a
foreign publisher on the port) are skipped and counted in ``invalid``. ``missed`` counts seq
gaps per stream: utterances the pipeline dropped or this subscriber was too slow to receive.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import zmq

from emostream.protocol import DEFAULT_ENDPOINT
from emostream.protocol import (EMOTION_TOPIC_PREFIX, PARTIAL_TOPIC_PREFIX, STATUS_TOPIC, MessageError,
                                      validate)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmotionEvent:
    topic: str
    stream_id: str
    seq: int
    label: str
    confidence: float
    probs: dict[str, float]
    valence: float
    arousal: float
    transcript: str
    start_s: float
    end_s: float
    timings_ms: dict[str, float]
    received_at: float
    message: dict[str, Any]
    turn_first_seq: int = 0  # seq of the turn's first fragment; below seq: this event revises those fragments

    @property
    def revises(self) -> range:
        """The seqs of the earlier fragments this turn result replaces (empty for a fresh utterance)."""
        return range(self.turn_first_seq or self.seq, self.seq)

    @classmethod
    def from_message(cls, topic: str, m: dict[str, Any], received_at: float) -> EmotionEvent:
        return cls(topic=topic, stream_id=m["stream_id"], seq=m["seq"], label=m["label"],
                   confidence=m["confidence"], probs=m["probs"], valence=m["valence"], arousal=m["arousal"],
                   transcript=m["transcript"], start_s=m["utterance"]["start_s"], end_s=m["utterance"]["end_s"],
                   timings_ms=m["timings_ms"], received_at=received_at, message=m,
                   turn_first_seq=m["utterance"].get("turn_first_seq", m["seq"]))


@dataclass(frozen=True)
class PartialEvent:
    """The utterance ``seq`` so far, while it is being spoken; its final EmotionEvent replaces it."""

    topic: str
    stream_id: str
    seq: int
    audio_s: float
    transcript: str
    stable: str
    unstable: str
    label: str
    confidence: float
    probs: dict[str, float]
    valence: float
    arousal: float
    timings_ms: dict[str, float]
    received_at: float
    message: dict[str, Any]
    final: bool = False

    @classmethod
    def from_message(cls, topic: str, m: dict[str, Any], received_at: float) -> PartialEvent:
        return cls(topic=topic, stream_id=m["stream_id"], seq=m["seq"], audio_s=m["audio_s"],
                   transcript=m["transcript"], stable=m["stable"], unstable=m["unstable"], label=m["label"],
                   confidence=m["confidence"], probs=m["probs"], valence=m["valence"], arousal=m["arousal"],
                   timings_ms=m["timings_ms"], received_at=received_at, message=m)


@dataclass(frozen=True)
class StatusEvent:
    topic: str
    state: str
    uptime_s: float
    streams: dict[str, dict[str, Any]]
    latency_ms: dict[str, dict[str, float]]
    received_at: float
    message: dict[str, Any]

    @classmethod
    def from_message(cls, topic: str, m: dict[str, Any], received_at: float) -> StatusEvent:
        return cls(topic=topic, state=m["state"], uptime_s=m["uptime_s"], streams=m["streams"],
                   latency_ms=m["latency_ms"], received_at=received_at, message=m)


Event = EmotionEvent | PartialEvent | StatusEvent


class Subscriber:
    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, streams: Sequence[str] | None = None,
                 emotions: bool = True, status: bool = False, timeout_s: float | None = None,
                 validate_messages: bool = True, high_water_mark: int = 1000, partials: bool = False,
                 curve_server_key: str | None = None, curve_client_key: str | None = None) -> None:
        """``streams``: only these stream ids (default all); ``status``: also heartbeats;
        ``partials``: also the results while an utterance is spoken (PartialEvent);
        ``curve_server_key``: the publisher's public key file when it uses CURVE (``curve_client_key``:
        this client's NAME.key_secret file, when the publisher allows listed clients only);
        ``timeout_s``: recv() raises TimeoutError, iteration ends, after this long without a message."""
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.validate_messages = validate_messages
        self._streams = set(streams) if streams else None
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, high_water_mark)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve_server_key:
            from emostream.curve import apply_client

            try:
                apply_client(self._socket, curve_server_key, curve_client_key)
            except ValueError:
                self._socket.close(0)
                raise
        topics = []
        if emotions:
            topics += [EMOTION_TOPIC_PREFIX + s for s in streams] if streams else [EMOTION_TOPIC_PREFIX]
        if partials:
            topics += [PARTIAL_TOPIC_PREFIX + s for s in streams] if streams else [PARTIAL_TOPIC_PREFIX]
        if status:
            topics.append(STATUS_TOPIC)
        if not topics:
            raise ValueError("subscribe to emotions, status, or both")
        for topic in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close(0)
            raise ValueError(f"cannot connect to {endpoint!r}: {exc}") from exc
        self.received = 0
        self.invalid = 0
        self.missed: dict[str, int] = {}
        self._last_seq: dict[str, int] = {}

    def _parse(self, frames: list[bytes]) -> Event | None:
        if len(frames) != 2:
            self.invalid += 1
            return None
        topic = frames[0].decode(errors="replace")
        try:
            message = json.loads(frames[1])
            if not isinstance(message, dict):
                raise ValueError(f"expected a JSON object, got {type(message).__name__}")
            if self.validate_messages:
                validate(message)
            now = time.time()
            if message.get("type") == "status":
                return StatusEvent.from_message(topic, message, now)
            if message.get("type") == "partial":
                partial = PartialEvent.from_message(topic, message, now)
                keep = self._streams is None or partial.stream_id in self._streams
                return partial if keep else None  # no seq bookkeeping: partials are best effort
            event = EmotionEvent.from_message(topic, message, now)
        except (ValueError, KeyError, TypeError, MessageError) as exc:
            self.invalid += 1
            log.warning("skipping a message on %r that is not an emostream v1 event: %s", topic, exc)
            return None
        if self._streams is not None and event.stream_id not in self._streams:  # topic match is a prefix match
            return None
        last = self._last_seq.get(event.stream_id)
        if last is not None and event.seq > last + 1:
            self.missed[event.stream_id] = self.missed.get(event.stream_id, 0) + event.seq - last - 1
        self._last_seq[event.stream_id] = event.seq
        return event

    def recv(self, timeout_s: float | None = -1.0) -> Event:
        """The next event; TimeoutError after ``timeout_s`` (default: the constructor's; None waits forever)."""
        timeout = self.timeout_s if timeout_s == -1.0 else timeout_s
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(wait_ms):
                raise TimeoutError(f"no emostream message from {self.endpoint} within {timeout:g} s")
            event = self._parse(self._socket.recv_multipart())
            if event is not None:
                self.received += 1
                return event

    def __iter__(self) -> Iterator[Event]:
        while True:
            try:
                yield self.recv()
            except TimeoutError:
                return

    def close(self) -> None:
        self._socket.close(0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
