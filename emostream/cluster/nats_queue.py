"""The pipeline's work queue on JetStream: the same interface as the in-process ``DropOldestQueue``.

A producer (``listen --nats``, the gateway) calls ``put``/``offer``; a worker calls ``get`` and
``task_done``. Semantics (README, cluster):

- ``put`` never blocks the audio thread: utterances go to an outbox that one task publishes in
  order, retrying through a reconnect with the same ``Nats-Msg-Id`` (stored once). The outbox is
  bounded; an utterance it cannot hold, one refused because its stream's backlog on the server is
  full, or one still unsent after ``max_lag_s`` is dropped and counted (``on_drop``).
- ``get`` takes one utterance from the shared durable consumer, marks it in progress while it is
  recognized, and ``task_done`` acks it once its result is published; an unusable one is
  terminated, a failed one is retried by any worker up to ``max_deliver`` times, then counted
  failed. A killed worker's utterance comes back after ``ack_wait_s``.
- Drop-oldest per stream: an utterance already older than ``max_lag_s`` when a worker takes it is
  dropped and counted, so a backlog drains to the present instead of answering the past.
- Partials: ``offer`` publishes the open utterance so far to a stream that keeps only the newest
  per stream; workers take one only when no final waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from emostream.cluster import wire
from emostream.cluster.link import BusError, NatsLink
from emostream.streaming.frames import SpeechEvent, Utterance

log = logging.getLogger(__name__)

OUTBOX = 256


class NatsWorkQueue:
    """``role="produce"`` (sources on this machine) or ``"consume"`` (models on this machine)."""

    supports_speculation = False  # a speculative final needs the close on the same machine as the models

    def __init__(self, link: NatsLink, config: wire.BusConfig, role: str, session: str | None = None,
                 partials: bool = True) -> None:
        if role not in ("produce", "consume"):
            raise ValueError(f"role must be produce or consume, got {role!r}")
        self.link = link
        self.config = config
        self.role = role
        self.session = session or uuid.uuid4().hex[:12]
        self.partials = partials
        self.capacity = OUTBOX if role == "produce" else 1
        self.dropped = 0
        self.high_water = 0
        self.counters = {"published": 0, "duplicates": 0, "refused": 0, "acked": 0, "terminated": 0,
                         "redelivered": 0, "naks": 0, "max_deliveries": 0}
        self.on_drop: Callable[[Utterance, str], None] | None = None
        self.on_failed: Callable[[Utterance, str], None] | None = None  # gave up on it (consumer side)
        self._lock = threading.Lock()
        self._held: dict[int, tuple[Any, Utterance]] = {}  # id(utterance) -> (msg, utterance) while recognized
        # finals the work queue held for any worker after the last one fetched here (its metadata):
        # what the pipeline's take size reads, as it reads an in-process queue's length
        self._server_waiting = 0
        self._subs: dict[int, tuple[Any, Any]] = {}  # thread id -> (finals, early) pull subscriptions
        self._closed = False
        self._sending = False
        self._advisories: Any = None
        try:  # one JetStream request (5 s) may start just before ensure_streams' own deadline
            link.call(wire.ensure_streams(link.js, config, consumer=role == "consume"),
                      timeout=config.ready_timeout_s + 10)
        except Exception as exc:  # no JetStream, no permission, a timeout, too many replicas
            hint = " (is JetStream on? nats-server -js …)" if isinstance(exc, TimeoutError) else ""
            raise BusError(f"cannot set up the JetStream work queue on {link.options.url}: "
                           f"{exc or type(exc).__name__}{hint}") from exc
        if role == "produce":
            self._outbox: asyncio.Queue = link.call(self._make_outbox())
            self._sender = link.spawn(self._send_loop())
        else:
            self._keeper = link.spawn(self._keep_in_progress())
            link.call(self._watch_max_deliveries())

    # --- producer -------------------------------------------------------------------------------
    async def _make_outbox(self) -> asyncio.Queue:
        return asyncio.Queue()

    def put(self, utterance: Utterance) -> Utterance | None:
        """Queue for sending; returns the utterance evicted from a full outbox (oldest), if any."""
        utterance = dataclasses.replace(utterance, session=utterance.session or self.session)
        return self.link.call(self._put(("final", utterance)), timeout=5)

    def put_wait(self, utterance: Utterance) -> None:
        """Not live (a file read fast): nothing is dropped for lag. Waits while the outbox is full or
        the workers have a backlog on the server, so the per-stream backlog is never exceeded."""
        while not self._closed:
            try:
                pending = self.link.call(self.link.js.consumer_info(wire.UTT_STREAM, wire.WORKERS),
                                         timeout=5).num_pending
            except Exception:
                pending = 0  # the bus is away: the outbox holds it meanwhile
            if len(self) < self.capacity and pending < max(1, self.config.backlog_per_stream // 2):
                break
            time.sleep(0.1)
        self.put(dataclasses.replace(utterance, live=False))

    async def _put(self, item: tuple[str, Utterance]) -> Utterance | None:
        evicted = None
        if self._outbox.qsize() >= self.capacity:
            evicted = self._outbox.get_nowait()[1]
            self.dropped += 1
        self._outbox.put_nowait(item)
        self.high_water = max(self.high_water, self._outbox.qsize())
        return evicted

    def offer(self, key: Any, job: Any) -> Any | None:
        """A partial: the open utterance so far (``job.utterance``). Speculation is in-process only."""
        if not self.partials or getattr(job, "kind", None) != "partial":
            return None
        if self._outbox.qsize() > 0:  # finals still going out: this snapshot would only add to it
            return job
        utterance = dataclasses.replace(job.utterance, session=job.utterance.session or self.session)
        self.link.spawn(self._put(("partial", utterance)))
        return None

    def withdraw(self, key: Any, item: Any) -> bool:
        return False

    async def _send_loop(self) -> None:
        from nats.js.errors import APIError

        while True:
            self._sending = False
            kind, utterance = await self._outbox.get()
            self._sending = True
            payload, headers = wire.encode(utterance, kind)
            subject = wire.utterance_subject(utterance.stream_id) if kind == "final" \
                else wire.early_subject(utterance.stream_id)
            lag = self.config.max_lag_s if kind == "final" else self.config.partial_max_age_s
            deadline = utterance.closed_wall + lag if utterance.live else float("inf")
            error: Exception | None = None
            while True:
                if time.time() > deadline:  # too old to matter by now (it waited for a server)
                    if kind == "final":
                        self._drop(utterance, f"not sent within --max-lag {lag:g} s ({error or 'outbox'})")
                    break
                try:
                    ack = await self.link.js.publish(subject, payload, headers=headers, timeout=2.0)
                    if kind == "final":
                        self.counters["duplicates" if ack.duplicate else "published"] += 1
                    break
                except APIError as exc:
                    if getattr(exc, "err_code", None) == wire.BACKLOG_FULL:  # this stream's backlog is full
                        if kind == "final":
                            self.counters["refused"] += 1
                            self._drop(utterance, f"refused: {self.config.backlog_per_stream} utterances of "
                                                  f"{utterance.stream_id} already wait on the bus (--backlog)")
                        break
                    error = exc  # e.g. 503 while JetStream recovers after a restart: try again
                except Exception as exc:  # no server right now: retry until it is too old to matter
                    error = exc
                log.debug("publish %s#%d: %s; retrying", utterance.stream_id, utterance.seq, error)
                await asyncio.sleep(0.25)

    def _drop(self, utterance: Utterance, reason: str) -> None:
        self.dropped += 1
        log.warning("dropped utterance %s#%d: %s", utterance.stream_id, utterance.seq, reason)
        if self.on_drop is not None:
            self.on_drop(utterance, reason)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued utterance was sent (or dropped); True if the outbox emptied. A
        consumer sends nothing: True at once."""
        if self.role != "produce":
            return True
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self) == 0 and self.link.call(self._idle(), timeout=5):
                return True
            time.sleep(0.05)
        return False

    async def _idle(self) -> bool:
        return self._outbox.qsize() == 0 and not self._sending

    # --- consumer -------------------------------------------------------------------------------
    async def _subscriptions(self, key: int) -> tuple[Any, Any]:
        if key not in self._subs:
            js = self.link.js
            finals = await js.pull_subscribe_bind(durable=wire.WORKERS, stream=wire.UTT_STREAM)
            early = await js.pull_subscribe_bind(durable=wire.EARLY_WORKERS, stream=wire.EARLY_STREAM) \
                if self.partials else None
            self._subs[key] = (finals, early)
        return self._subs[key]

    def get(self, timeout: float | None = None) -> Utterance | SpeechEvent | None:
        """A final utterance, else (with partials on) a fresh partial snapshot; None if none came."""
        items = self.get_batch(1, timeout)
        return items[0] if items else None

    def get_batch(self, limit: int, timeout: float | None = None) -> list[Utterance | SpeechEvent]:
        """What ``get`` returns, then what else the bus has ready now, up to ``limit``: finals
        first, then partial snapshots. Each final is held, and acked, on its own."""
        if self._closed:
            time.sleep(timeout or 0)
            return []
        try:
            return self.link.call(self._get_batch(threading.get_ident(), timeout or 0.5, limit),
                                  timeout=(timeout or 0.5) + 10)
        except Exception as exc:  # the bus is away: the fetch loop keeps trying
            log.debug("fetch: %s", exc)
            time.sleep(0.2)
            return []

    async def _get_batch(self, key: int, timeout: float, limit: int) -> list[Utterance | SpeechEvent]:
        first = await self._get(key, timeout)
        if first is None:
            return []
        batch = [first]
        finals, early = await self._subscriptions(key)
        if isinstance(first, Utterance):  # no final waits when a partial came first
            for msg in await self._fetch_ready(finals, limit - len(batch)):
                utterance = await self._take_final(msg)
                if utterance is not None:
                    batch.append(utterance)
        if early is not None:
            for msg in await self._fetch_ready(early, limit - len(batch)):
                event = await self._take_partial(msg)
                if event is not None:
                    batch.append(event)
        return batch

    @staticmethod
    async def _fetch_ready(sub, n: int) -> list:
        """Up to ``n`` messages the server has now (nats-py asks with no_wait first)."""
        if n <= 0:
            return []
        try:
            return await sub.fetch(batch=n, timeout=0.05)
        except asyncio.TimeoutError:
            return []

    async def _get(self, key: int, timeout: float) -> Utterance | SpeechEvent | None:
        finals, early = await self._subscriptions(key)
        while True:
            msg = await self._fetch(finals, timeout if early is None else min(timeout, 0.2))
            if msg is None:
                self._server_waiting = 0
                break
            utterance = await self._take_final(msg)
            if utterance is not None:
                return utterance  # None: it was stale or foreign and is gone; the next one
        if early is not None:
            msg = await self._fetch(early, 0.02)
            if msg is not None:
                return await self._take_partial(msg)
        return None

    @staticmethod
    async def _fetch(sub, timeout: float):
        try:
            msgs = await sub.fetch(batch=1, timeout=timeout)
        except asyncio.TimeoutError:  # nats-py's fetch timeout: nothing waiting
            return None
        return msgs[0] if msgs else None

    async def _take_final(self, msg) -> Utterance | None:
        delivery = msg.metadata.num_delivered
        self._server_waiting = msg.metadata.num_pending
        if delivery > 1:
            self.counters["redelivered"] += 1
        try:
            _, utterance = wire.decode(msg.data, msg.headers, delivery)
        except wire.WireError as exc:
            log.warning("terminated a message on %s: %s", msg.subject, exc)
            await msg.term()
            self.counters["terminated"] += 1
            return None
        if utterance.live and delivery == 1 and time.time() - utterance.closed_wall > self.config.max_lag_s:
            await msg.term()
            self.counters["terminated"] += 1
            self._drop(utterance, f"{time.time() - utterance.closed_wall:.1f} s old when a worker was free "
                                  f"(over --max-lag {self.config.max_lag_s:g} s)")  # a redelivery is recovery: kept
            return None
        await msg.in_progress()
        with self._lock:
            self._held[id(utterance)] = (msg, utterance)
        return utterance

    async def _take_partial(self, msg) -> SpeechEvent | None:
        await msg.ack()
        try:
            kind, utterance = wire.decode(msg.data, msg.headers)
        except wire.WireError:
            return None
        if time.time() - utterance.closed_wall > self.config.partial_max_age_s:
            return None
        return SpeechEvent("progress", utterance.stream_id, utterance.seq, utterance)

    def task_done(self, utterance: Utterance, outcome: str) -> None:
        """``published``: ack. ``unusable`` (bad audio): terminate. ``failed``: retry elsewhere
        unless this was the last allowed delivery (then terminate; the caller counts it failed)."""
        with self._lock:
            held = self._held.pop(id(utterance), None)
        if held is None:
            return
        msg = held[0]
        if outcome == "published":
            action, name = msg.ack_sync, "acked"
        elif outcome == "failed" and utterance.delivery < self.config.max_deliver:
            action, name = (lambda: msg.nak(delay=0.5)), "naks"
        else:
            action, name = msg.term, "terminated"
        try:
            self.link.call(action(), timeout=5)
            self.counters[name] += 1
        except Exception as exc:  # it comes back after ack_wait; results are de-duplicated by (session, stream, seq)
            log.warning("could not %s %s#%d: %s", name.rstrip("s").rstrip("ed"), utterance.stream_id,
                        utterance.seq, exc)

    async def _watch_max_deliveries(self) -> None:
        """An utterance whose every delivery died with its worker (a poison input that kills the
        process, say) stays in the stream after ``max_deliver``: one worker (a queue group) hears
        the server's advisory, counts it failed, announces it, and deletes it."""
        subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{wire.UTT_STREAM}.{wire.WORKERS}"

        async def on_advisory(msg) -> None:
            try:
                advisory = json.loads(msg.data)
                raw = await self.link.js.get_msg(wire.UTT_STREAM, int(advisory["stream_seq"]))
                _, utterance = wire.decode(raw.data, raw.headers, int(advisory.get("deliveries", 0)))
                await self.link.js.delete_msg(wire.UTT_STREAM, int(advisory["stream_seq"]))
            except Exception as exc:  # already gone (terminated meanwhile), or not ours
                log.debug("max-deliveries advisory: %s", exc)
                return
            self.counters["max_deliveries"] += 1
            log.warning("gave up on utterance %s#%d: its %d deliveries all ended without a result",
                        utterance.stream_id, utterance.seq, utterance.delivery)
            if self.on_failed is not None:
                self.on_failed(utterance, f"{utterance.delivery} deliveries, no result (workers died holding it)")

        self._advisories = await self.link.nc.subscribe(subject, queue="emostream-workers", cb=on_advisory)

    def is_last_try(self, utterance: Utterance) -> bool:
        return utterance.delivery >= self.config.max_deliver

    async def _keep_in_progress(self) -> None:
        """A long recognition (cold start, a slow machine) must not look like a dead worker."""
        while True:
            await asyncio.sleep(max(0.5, self.config.ack_wait_s / 3))
            with self._lock:
                msgs = [m for m, _ in self._held.values()]
            for m in msgs:
                try:
                    await m.in_progress()
                except Exception:
                    pass

    # --- both -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Producer: finals not yet sent. Consumer: finals waiting on the server as of the last fetch."""
        if self.role == "produce":
            return self._outbox.qsize()
        return self._server_waiting

    def backlog(self) -> int:
        return len(self)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            held = len(self._held)
        return {"depth": len(self), **({"held": held} if self.role == "consume" else {}),
                "capacity": self.capacity, "dropped": self.dropped,
                "high_water": self.high_water, "bus": {"role": self.role, "session": self.session,
                                                       **self.counters, **self.link.counters}}

    def close(self) -> None:
        """Stop; what a producer could not send by now is dropped and counted, not lost unseen."""
        self._closed = True
        if self.role == "consume" and self._advisories is not None:
            try:  # a stopped worker leaves the advisory queue group to the live ones
                self.link.call(self._advisories.unsubscribe(), timeout=5)
            except Exception as exc:
                log.debug("advisory unsubscribe: %s", exc)
        if self.role == "consume":
            try:  # its pull inboxes too: nats-py's drain would wait on them until its timeout
                self.link.call(self._unsubscribe_pulls(), timeout=5)
            except Exception as exc:
                log.debug("pull unsubscribe: %s", exc)
        if self.role == "produce":
            try:
                self.link.call(self._abandon(), timeout=5)
            except Exception as exc:
                log.warning("could not account for unsent utterances: %s", exc)

    async def _unsubscribe_pulls(self) -> None:
        for subs in list(self._subs.values()):
            for sub in subs:
                if sub is not None:
                    await sub.unsubscribe()
        self._subs.clear()

    async def _abandon(self) -> None:
        self._sender.cancel()
        while not self._outbox.empty():
            kind, utterance = self._outbox.get_nowait()
            if kind == "final":
                self._drop(utterance, "not sent before shutdown (no NATS server?)")
