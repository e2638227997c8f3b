"""The WebSocket server of ``emostream serve`` and ``emostream gateway``: network audio in, results
back, the browser page on the same port.

``serve`` runs it over the pipeline in its own process; ``gateway`` over the bus (utterances onto
JetStream, results from the workers). The server sees a ``ResultFeed`` either way (``feed.py``).

Routes: ``/`` the page (``page.py``), ``/v1/stream`` a stream, ``/v1/watch?stream_id=ID`` another
stream's results without sending audio (``{"type":"watching"}`` first, then every result).

Protocol (``ws://HOST:PORT/v1/stream``; README, "A page in the browser" and "Cluster"):
  client -> text   {"stream_id": "call-17", "rate": 16000, "format": "s16le", "channels": 1}
                   format: s16le | f32le | mulaw (G.711 u-law, telephony); any rate is resampled
  server -> text   {"type": "ready", "session": ..., "stream_id": ...}
  client -> binary audio frames, any length (a sample split across frames is fine)
  server -> text   every result for this stream, emotion-1 / partial-1 JSON, finals in seq order
  client -> text   {"type": "end"}: the server publishes what is left, then closes 1000
Close codes: 1008 bad start message / bad frame / nothing sent in time, 1009 frame too large,
1013 overloaded (too many streams, or audio faster than it can be segmented), 1001 shutting down.
HTTP refusals before any audio: 401 missing or wrong token, 403 a browser page of another origin,
404 an unknown path.
A client that does not read its results within ``send_timeout_s`` is cut off (its socket aborted),
so it cannot hold the gateway's memory or stall other clients.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import json
import logging
import re
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emostream.cluster.ordering import ResultOrder
from emostream.streaming.agreement import LocalAgreement
from emostream.streaming.hooks import PipelineHooks
from emostream.streaming.audio import AudioError
from emostream.streaming.pcm import FORMATS, PcmDecoder
from emostream.streaming.sources.push import PushSource
from emostream.web.feed import ResultFeed, Unsubscribe
from emostream.web.page import page_response

log = logging.getLogger(__name__)

PATH = "/v1/stream"
WATCH_PATH = "/v1/watch"
STREAM_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None  # clients send "Authorization: Bearer <token>" (or ?token= for browsers)
    tls_cert: str | None = None
    tls_key: str | None = None
    max_streams: int = 64
    max_watchers: int = 64  # /v1/watch connections (they send no audio)
    max_frame_bytes: int = 1 << 18  # 256 KiB: over a second of 48 kHz float stereo
    hello_timeout_s: float = 5.0
    idle_timeout_s: float = 30.0  # no audio for this long: the client is gone
    send_timeout_s: float = 5.0
    result_wait_s: float = 20.0  # after "end": how long to wait for the last results
    hold_s: float = 2.0  # a final waits this long for an earlier missing one (see ordering)
    max_buffered_s: float = 5.0  # audio waiting for the segmenter; beyond it the client is slowed down
    overload_s: float = 10.0  # ... and if it stays full this long, the stream is closed 1013
    # permessage-deflate: off, because results are small JSON and audio does not compress, while each
    # compressed connection holds zlib state; with it the 30-min soak's gateway grew +14 % (without: +2.9 %).
    compression: bool = False
    # browsers send Origin: a page from another site may not use this server from a visitor's browser.
    # Allowed: the server's own origin (as the Host header names it) and these ("*": any)
    allowed_origins: tuple[str, ...] = ()

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls_cert:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx

    def page_url(self, port: int) -> str:
        """Where a browser on this machine opens the page (a wildcard address is reached on loopback)."""
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls_cert else 'http'}://{host}:{port}/"


class GatewayHooks(PipelineHooks):
    """The server's connections in the pipeline's status (given the server's ``status``)."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status

    def status_fields(self) -> dict[str, Any]:
        return self._status()


class StartError(ValueError):
    """A start message the gateway cannot use; the text is the close reason (<= 123 bytes)."""


@dataclass(frozen=True)
class StreamSpec:
    stream_id: str
    rate: int
    format: str
    channels: int

    @classmethod
    def parse(cls, message: str | bytes) -> StreamSpec:
        if isinstance(message, bytes):
            raise StartError('first message must be text JSON: {"stream_id":..,"rate":..,"format":..}')
        try:
            d = json.loads(message)
        except (ValueError, RecursionError):
            raise StartError("first message is not JSON") from None
        if not isinstance(d, dict):
            raise StartError("first message must be a JSON object")
        sid, rate, fmt, ch = d.get("stream_id"), d.get("rate"), d.get("format", "s16le"), d.get("channels", 1)
        if not isinstance(sid, str) or not STREAM_ID.match(sid):
            raise StartError("stream_id: 1-64 letters, digits, '_', '.', '-'")
        if fmt not in FORMATS:
            raise StartError(f"format {str(fmt)[:20]!r}: use s16le, f32le or mulaw")
        if not isinstance(rate, int) or isinstance(rate, bool) or not 4000 <= rate <= 192000:
            raise StartError(f"rate {str(rate)[:12]!r}: an integer 4000-192000 Hz")
        if not isinstance(ch, int) or isinstance(ch, bool) or not 1 <= ch <= 8:
            raise StartError(f"channels {str(ch)[:8]!r}: 1-8")
        return cls(sid, rate, fmt, ch)


class FrameDecoder(PcmDecoder):
    """One stream's binary frames, as its start message described them."""

    def __init__(self, spec: StreamSpec) -> None:
        super().__init__(spec.rate, spec.format, spec.channels)
        self.spec = spec


class _Outbox:
    """A client's messages on their way out, in order and bounded: a client that lets 512 pile up,
    or reads nothing for ``send_timeout_s``, is cut off (its socket aborted, once), so it cannot hold
    the server's memory or stall other clients. Streams and watchers alike."""

    def __init__(self, gateway: Gateway, ws, who: str) -> None:
        self.gateway, self.ws, self.who = gateway, ws, who
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=512)
        self.cut_off = False

    def queue_text(self, text: str | None) -> None:
        """Queue a message; None ends ``send_loop`` once what came before it is sent."""
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            self.abort("its results piled up unread")

    def abort(self, why: str) -> None:
        if not self.cut_off:
            self.cut_off = True
            self.gateway.counters["cut_off"] += 1
            log.warning("cut off %s: %s", self.who, why)
            self.ws.transport.abort()

    async def send_loop(self) -> None:
        timeout = self.gateway.config.send_timeout_s
        while (text := await self.outbox.get()) is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self.ws.send(text)
            except TimeoutError:
                self.abort(f"did not read its results for {timeout:g} s")
                return
            except Exception:  # closed under us
                return


class _Connection(_Outbox):
    def __init__(self, gateway: Gateway, ws, spec: StreamSpec) -> None:
        self.spec = spec
        self.session = uuid.uuid4().hex[:12]
        super().__init__(gateway, ws, f"{spec.stream_id} ({self.session})")
        peer = ws.remote_address[0] if ws.remote_address else "?"
        self.source = PushSource(spec.stream_id, f"ws {peer} ({spec.format}, {spec.rate} Hz, {spec.channels} ch)",
                                 gateway.config.max_buffered_s)
        self.source.session = self.session
        self.decoder = FrameDecoder(spec)
        self.order = ResultOrder(gateway.config.hold_s)
        self.agreement = LocalAgreement()
        self.finals_sent = 0
        self.stop = asyncio.Event()  # the gateway is shutting down: leave the receive loop, finish up
        self.unsubscribe: Unsubscribe | None = None
        self.retired = asyncio.Event()  # its source left the pipeline: the stream id is free again

    def deliver(self, message: dict[str, Any]) -> None:
        if message.get("session") != self.session:
            return  # this stream id's earlier session (a reconnect) or someone else's
        self._send_all(self.order.add(message))  # a "gone" notice (dropped, failed) fills its seq silently

    @property
    def gone(self) -> dict[int, str]:
        return self.order.account(self.session, self.spec.stream_id)[1]

    def tick(self) -> None:
        self._send_all(self.order.expire())

    def _send_all(self, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            if m.get("type") == "partial":  # the stable prefix over every partial, whichever worker made it
                m["stable"], m["unstable"] = self.agreement.update(m["seq"], m["transcript"])
            else:
                self.finals_sent += 1
            self.queue_text(json.dumps(m, separators=(",", ":"), ensure_ascii=False))


class Gateway:
    """Runs on one event loop (the NATS link's, or serve's own); the pipeline segments the streams'
    audio and either recognises it here (serve) or enqueues it for the workers (gateway)."""

    def __init__(self, config: GatewayConfig, feed: ResultFeed, pipeline) -> None:
        self.config, self.feed, self.pipeline = config, feed, pipeline
        self.connections: dict[str, _Connection] = {}
        self.counters = {"connections": 0, "refused": 0, "cut_off": 0, "completed": 0, "watches": 0}
        self.server: Any = None
        self.port: int | None = None
        self._closing = False
        self._handshakes = 0
        self._watching: set[Any] = set()

    def status(self) -> dict[str, Any]:
        return {"gateway": {"listen": f"{self.config.host}:{self.port}", "open": len(self.connections),
                            "watching": len(self._watching), **self.counters}}

    # --- server ---------------------------------------------------------------------------------
    async def start(self) -> None:
        from websockets.asyncio.server import serve

        c = self.config
        self.server = await serve(self._handle, c.host, c.port, process_request=self._check_request,
                                  max_size=c.max_frame_bytes, max_queue=32, ssl=c.ssl_context(),
                                  compression="deflate" if c.compression else None,
                                  ping_interval=20, ping_timeout=20, close_timeout=5)
        self.port = self.server.sockets[0].getsockname()[1]
        scheme = "wss" if c.tls_cert else "ws"
        log.info("gateway on %s://%s:%d%s", scheme, c.host, self.port, PATH)

    def _check_request(self, connection, request):
        path, _, query = request.path.partition("?")
        if path not in (PATH, WATCH_PATH):
            if request.headers.get("Upgrade", "").lower() != "websocket":
                page = page_response(path)
                if page is not None:
                    return page
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"the stream endpoint is {PATH}; the page is /\n")
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, request.headers.get("Host", "")):
            self.counters["refused"] += 1
            log.info("refused a page from %s (allowed: this server's own origin%s)", origin,
                     "".join(f", {o}" for o in self.config.allowed_origins))
            return connection.respond(http.HTTPStatus.FORBIDDEN, f"origin {origin[:80]} is not allowed here\n")
        if self.config.token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            for part in query.split("&"):
                if part.startswith("token="):
                    given = urllib.parse.unquote(part[6:])
            if not hmac.compare_digest(given.encode(), self.config.token.encode()):
                self.counters["refused"] += 1
                response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token\n")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        return None

    def _origin_allowed(self, origin: str, host: str) -> bool:
        allowed = self.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        scheme = "https" if self.config.tls_cert else "http"
        return bool(host) and origin.lower() == f"{scheme}://{host}".lower()

    def stop(self, loop) -> None:
        """From a plain thread (``loop``: the ``LoopThread`` it runs on): end every stream with its
        last results (``shutdown``), then let the pipeline finish."""
        loop.call(self.shutdown(), timeout=self.config.result_wait_s + 15)
        self.pipeline.stop()

    async def shutdown(self) -> None:
        """Stop taking connections; every open stream ends, gets its last results, and is closed 1001."""
        self._closing = True
        if self.server is not None:
            self.server.close(close_connections=False)
        for conn in list(self.connections.values()):
            conn.stop.set()  # each ends its stream, waits for its results, sends its account, closes 1001
        for ws in list(self._watching):
            await self._close(ws, 1001, "gateway shutting down")
        deadline = time.monotonic() + self.config.result_wait_s + 2 * self.config.send_timeout_s
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self.server is not None:
            self.server.close()
            try:
                async with asyncio.timeout(5):
                    await self.server.wait_closed()
            except TimeoutError:
                pass

    # --- one connection -------------------------------------------------------------------------
    async def _close(self, ws, code: int, reason: str) -> None:
        reason = reason.encode()[:123].decode(errors="ignore")
        try:
            async with asyncio.timeout(self.config.send_timeout_s):
                await ws.close(code, reason)
        except TimeoutError:
            ws.transport.abort()

    async def _refuse(self, ws, code: int, reason: str) -> None:
        self.counters["refused"] += 1
        log.info("refused a stream from %s: %s", ws.remote_address, reason)
        await self._close(ws, code, reason)

    async def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        c = self.config
        self.counters["connections"] += 1
        if ws.request.path.partition("?")[0] == WATCH_PATH:
            return await self._watch(ws)
        if self._closing:
            return await self._refuse(ws, 1001, "gateway shutting down")
        if len(self.connections) + self._handshakes >= c.max_streams:
            return await self._refuse(ws, 1013, f"gateway at capacity ({c.max_streams} streams); try again later")
        self._handshakes += 1  # a slot is held while the client says who it is
        try:
            async with asyncio.timeout(c.hello_timeout_s):
                first = await ws.recv()
            spec = StreamSpec.parse(first)
            await self._wait_for_retiring(spec.stream_id)
            if spec.stream_id in self.connections:
                raise StartError(f"stream_id {spec.stream_id!r} is already streaming here")
        except TimeoutError:
            return await self._refuse(ws, 1008, f"no start message within {c.hello_timeout_s:g} s")
        except StartError as exc:
            return await self._refuse(ws, 1008, str(exc))
        except ConnectionClosed:
            return
        finally:
            self._handshakes -= 1
        conn = _Connection(self, ws, spec)
        self.connections[spec.stream_id] = conn
        try:
            await self._serve(conn)
        except Exception:  # never let one connection's surprise take the others down
            log.exception("stream %s (%s) failed", spec.stream_id, conn.session)
            conn.abort("internal error")
        finally:
            if conn.unsubscribe is not None:
                await conn.unsubscribe()
            await asyncio.to_thread(self.pipeline.retire_source, spec.stream_id)
            del self.connections[spec.stream_id]  # only now may the id stream again
            conn.retired.set()

    async def _watch(self, ws) -> None:
        """Another stream's results, as they come, without sending audio (the page's watch mode).
        Finals of a cluster may repeat or arrive out of order: ``session`` and ``seq`` identify them."""
        from websockets.exceptions import ConnectionClosed

        stream_id = (urllib.parse.parse_qs(ws.request.path.partition("?")[2]).get("stream_id") or [""])[0]
        if self._closing:
            return await self._refuse(ws, 1001, "gateway shutting down")
        if not STREAM_ID.match(stream_id):
            return await self._refuse(ws, 1008, "watch: ?stream_id= 1-64 letters, digits, '_', '.', '-'")
        if len(self._watching) >= self.config.max_watchers:
            return await self._refuse(ws, 1013, f"at capacity ({self.config.max_watchers} watchers); try again later")
        self._watching.add(ws)
        self.counters["watches"] += 1
        agreements: dict[Any, LocalAgreement] = {}
        out = _Outbox(self, ws, f"a watcher of {stream_id}")

        def deliver(message: dict[str, Any]) -> None:
            if message.get("type") == "partial":
                agreement = agreements.setdefault(message.get("session"), LocalAgreement())
                message["stable"], message["unstable"] = agreement.update(message["seq"], message["transcript"])
            out.queue_text(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

        out.queue_text(json.dumps({"type": "watching", "stream_id": stream_id}))  # first, before any result
        unsubscribe = await self.feed.subscribe(stream_id, deliver)
        sender = asyncio.create_task(out.send_loop())
        try:
            async for _ in ws:  # nothing is expected from a watcher; this notices when it leaves
                pass
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            await unsubscribe()
            self._watching.discard(ws)

    async def _wait_for_retiring(self, stream_id: str) -> None:
        """A client that reconnects with its stream id as soon as the last close reaches it finds the
        old session still retiring its source: wait for that (briefly) instead of refusing it."""
        from websockets.protocol import State

        old = self.connections.get(stream_id)
        if old is None or old.ws.state not in (State.CLOSING, State.CLOSED):
            return
        try:
            async with asyncio.timeout(self.config.send_timeout_s):
                await old.retired.wait()
        except TimeoutError:
            pass

    async def _serve(self, conn: _Connection) -> None:
        conn.unsubscribe = await self.feed.subscribe(conn.spec.stream_id, conn.deliver)
        self.pipeline.add_source(conn.source)
        sender = asyncio.create_task(conn.send_loop())
        ticker = asyncio.create_task(self._tick(conn))
        try:
            await self._stream(conn, sender)
        finally:
            ticker.cancel()
            sender.cancel()

    async def _next_frame(self, conn: _Connection):
        """The client's next message; None once the gateway is shutting down. TimeoutError after
        ``idle_timeout_s`` without one."""
        receive = asyncio.ensure_future(conn.ws.recv())  # cancelling recv loses nothing (websockets)
        stopping = asyncio.ensure_future(conn.stop.wait())
        try:
            done, _ = await asyncio.wait({receive, stopping}, timeout=self.config.idle_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (receive, stopping):
                if not f.done():
                    f.cancel()
        if receive in done:
            return receive.result()
        if stopping in done:
            return None
        raise TimeoutError

    async def _push(self, conn: _Connection, block) -> bool:
        """Hand audio to the segmenter; while its buffer is full, stop reading from this client (TCP
        slows a client that sends faster than real time) for up to ``overload_s``."""
        if conn.source.push(block):
            return True
        conn.source.count("backpressure_waits")
        end = time.monotonic() + self.config.overload_s
        while time.monotonic() < end:
            await asyncio.sleep(0.02)
            if conn.source.push(block):
                return True
        return False

    async def _stream(self, conn: _Connection, sender: asyncio.Task) -> None:
        from websockets.exceptions import ConnectionClosed

        c, ws, sid = self.config, conn.ws, conn.spec.stream_id
        conn.queue_text(json.dumps({"type": "ready", "session": conn.session, "stream_id": sid}))
        code, reason = 1000, "end of stream"
        try:
            while True:
                try:
                    frame = await self._next_frame(conn)
                except TimeoutError:
                    code, reason = 1008, f"no audio for {c.idle_timeout_s:g} s"
                    break
                if frame is None:
                    code, reason = 1001, "gateway shutting down"
                    break
                if isinstance(frame, bytes):
                    try:
                        block = conn.decoder(frame)
                    except AudioError as exc:
                        code, reason = 1008, str(exc)
                        break
                    if block.size and not await self._push(conn, block):
                        code, reason = 1013, "overloaded: audio arrives faster than it is segmented"
                        break
                    continue
                try:
                    kind = json.loads(frame).get("type")
                except (ValueError, AttributeError, RecursionError):
                    kind = None
                if kind == "end":
                    tail = conn.decoder(b"", last=True)
                    if tail.size:
                        conn.source.push(tail)
                    break
                code, reason = 1008, 'text messages after the start: only {"type": "end"}'
                break
        except ConnectionClosed:
            code = None  # the client left (or was cut off): what it said is still recognised and published
        finally:
            conn.source.end()
        if code is not None and not conn.cut_off:
            await self._drain(conn)
            conn.queue_text(json.dumps(self._summary(conn)))
            if code == 1000:
                self.counters["completed"] += 1
            conn.queue_text(None)
            try:
                async with asyncio.timeout(c.send_timeout_s):
                    await sender
            except TimeoutError:
                conn.abort("did not read its last results")
            await self._close(ws, code, reason)

    def _summary(self, conn: _Connection) -> dict[str, Any]:
        """The stream's account, sent before the close: every utterance is a final, dropped or failed
        (or still missing when the wait ran out: ``missing``)."""
        counts = self.pipeline.stream_counts(conn.spec.stream_id)
        utterances = counts.get("utterances", 0)
        dropped = counts.get("dropped", 0) + sum(1 for v in conn.gone.values() if v == "dropped")
        failed = sum(1 for v in conn.gone.values() if v == "failed")
        return {"type": "end", "stream_id": conn.spec.stream_id, "session": conn.session, "utterances": utterances,
                "finals": conn.finals_sent, "dropped": dropped, "failed": failed,
                "missing": max(0, utterances - conn.finals_sent - dropped - failed)}

    async def _tick(self, conn: _Connection) -> None:
        while True:
            await asyncio.sleep(0.2)
            conn.tick()

    async def _drain(self, conn: _Connection) -> None:
        """Wait until every utterance of the stream has its final (or was counted dropped/failed)."""
        sid = conn.spec.stream_id
        deadline = time.monotonic() + self.config.result_wait_s
        while time.monotonic() < deadline:
            counts = self.pipeline.stream_counts(sid)
            if counts and not counts["source_running"] and conn.order.waiting() == 0 \
                    and conn.finals_sent + counts.get("dropped", 0) + len(conn.gone) >= counts.get("utterances", 0):
                return
            if conn.cut_off:
                return
            await asyncio.sleep(0.05)
        log.warning("%s: gave up waiting for results after %.0f s", sid, self.config.result_wait_s)
