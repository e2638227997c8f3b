"""Bad and hostile WebSocket clients against a real server: the gateway on a real nats-server (no
models needed) and ``emostream serve`` (models in the process, no bus), which share it. Each client
gets a clear close code and reason, and the server keeps serving the others."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from cluster_helpers import free_port, self_signed_cert
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from emostream.cluster import wire
from emostream.cluster.link import NatsLink, NatsOptions

TOKEN = "s3cret-test-token"


def _server(kind: str, request, processes) -> str:
    """One process of each kind per module: ``gateway`` (needs nats-server) or ``serve``."""
    servers = processes.__dict__.setdefault("servers", {})
    if kind not in servers:
        port = free_port()
        bus = ("--nats", request.getfixturevalue("nats_server").url) if kind == "gateway" else ()
        processes.start(kind, kind, "--listen", f"127.0.0.1:{port}", "--token", TOKEN, "--max-streams", "3", *bus)
        processes.wait_log(kind, "/v1/stream")
        servers[kind] = f"ws://127.0.0.1:{port}/v1/stream"
    return servers[kind]


@pytest.fixture(scope="module", params=["gateway", "serve"])
def gateway(request, processes):
    return _server(request.param, request, processes)


@pytest.fixture(scope="module")
def bus_gateway(request, processes):
    return _server("gateway", request, processes)


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def _closed_with(url: str, first, then=None, wait: float = 10.0, **kw) -> tuple[int, str]:
    async with connect(url, additional_headers=_auth(), **kw) as ws:
        try:  # a gateway at capacity closes before it reads anything: even this send may meet the close
            await ws.send(first)
            async with asyncio.timeout(wait):
                while True:
                    if then is not None:
                        await ws.send(then)
                        then = None
                    await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


def _start(**over) -> str:
    return json.dumps({"stream_id": "bad", "rate": 16000, "format": "s16le", "channels": 1, **over})


async def _good_stream(url: str, stream_id: str) -> str:
    """A well-behaved client still gets its session while others misbehave."""
    async with connect(url, additional_headers=_auth()) as ws:
        await ws.send(_start(stream_id=stream_id))
        ready = json.loads(await ws.recv())
        await ws.send(np.zeros(3200, "<i2").tobytes())
        await ws.send(json.dumps({"type": "end"}))
        async for _ in ws:
            pass
    assert ws.close_code == 1000, ws.close_reason
    return ready["session"]


def test_token_and_path_are_checked(gateway):
    async def go():
        with pytest.raises(InvalidStatus) as no_token:
            async with connect(gateway):
                pass
        with pytest.raises(InvalidStatus) as wrong_path:
            async with connect(gateway.replace("/v1/stream", "/stream"), additional_headers=_auth()):
                pass
        async with connect(gateway + f"?token={TOKEN}") as ws:  # browsers cannot set headers
            # the client offers permessage-deflate (websockets' default, as browsers do); the gateway
            # declines it unless started with --ws-compression
            assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            await ws.send(_start(stream_id="browser"))
            assert json.loads(await ws.recv())["type"] == "ready"
        return no_token.value.response.status_code, wrong_path.value.response.status_code

    assert asyncio.run(go()) == (401, 404)


@pytest.mark.parametrize("first, reason", [
    (b"\x00\x01binary", "first message must be text JSON"),
    ("hello", "not JSON"),
    (_start(stream_id="a b"), "stream_id"),
    (_start(format="mp3"), "format 'mp3'"),
    (_start(rate=44.1), "rate"),
    (_start(rate=100), "rate"),
    (_start(channels=0), "channels"),
    ("[" * 100_000, "not JSON"),  # nesting deep enough to make the JSON parser recurse out
])
def test_bad_start_message_is_closed_1008_with_the_reason(gateway, first, reason):
    code, why = asyncio.run(_closed_with(gateway, first))
    assert code == 1008 and reason in why


def test_bad_frames_and_oversize_frames(gateway):
    nan = np.full(160, np.nan, "<f4").tobytes()
    code, why = asyncio.run(_closed_with(gateway, _start(format="f32le"), then=nan))
    assert code == 1008 and "NaN" in why
    code, why = asyncio.run(_closed_with(gateway, _start(), then='{"type": "pause"}'))
    assert code == 1008 and "only" in why
    huge = bytes(1 << 19)  # 512 KiB > the 256 KiB frame limit
    code, _ = asyncio.run(_closed_with(gateway, _start(), then=huge))
    assert code == 1009


def test_a_stream_id_reconnects_as_soon_as_its_close_arrives(gateway):
    """The old session may still be retiring its source when the client is back: it is waited for,
    not refused as 'already streaming'."""
    async def go():
        return [await _good_stream(gateway, "again") for _ in range(4)]

    sessions = asyncio.run(go())
    assert len(set(sessions)) == 4


def test_silent_client_is_closed_after_the_start_timeout(gateway):
    async def go():
        async with connect(gateway, additional_headers=_auth()) as ws:
            t0 = time.monotonic()
            try:
                await ws.recv()
            except ConnectionClosed:
                pass
            return ws.close_code, ws.close_reason, time.monotonic() - t0

    code, why, waited = asyncio.run(go())
    assert code == 1008 and "no start message" in why and 4 < waited < 15


def test_capacity_duplicate_ids_and_others_keep_working(gateway):
    async def go():
        holders = []
        for i in range(3):
            ws = await connect(gateway, additional_headers=_auth()).__aenter__()
            await ws.send(_start(stream_id=f"hold{i}"))
            assert json.loads(await ws.recv())["type"] == "ready"
            holders.append(ws)
        full = await _closed_with(gateway, _start(stream_id="one-too-many"), wait=5)
        await holders[2].close()
        await asyncio.sleep(0.3)
        dup = await _closed_with(gateway, _start(stream_id="hold0"), wait=5)
        session = await _good_stream(gateway, "good")
        for ws in holders[:2]:
            await ws.close()
        return full, dup, session

    full, dup, session = asyncio.run(go())
    assert full[0] == 1013 and "capacity" in full[1]
    assert dup[0] == 1008 and "already streaming" in dup[1]
    assert session


def test_client_that_never_reads_is_cut_off_and_others_are_served(bus_gateway, nats_server, processes):
    """Results pile up for a client that reads nothing: after the send timeout its socket is
    aborted instead of holding the gateway (websockets' own keepalive cannot notice this)."""
    link = NatsLink(NatsOptions(url=nats_server.url, name="flood"))

    async def go():
        ws = await connect(bus_gateway, additional_headers=_auth(), max_queue=1, max_size=None).__aenter__()
        await ws.send(_start(stream_id="deaf"))
        session = json.loads(await ws.recv())["session"]
        big = np.random.default_rng(0).bytes(150_000).hex()  # 300 kB that permessage-deflate cannot shrink
        for seq in range(1, 81):  # 24 MB of results, more than the loopback socket buffers hold, never read
            msg = {"type": "emotion", "stream_id": "deaf", "seq": seq, "session": session, "transcript": big}
            await asyncio.wrap_future(link.spawn(link.nc.publish(wire.bus_subject("emotion.deaf"),
                                                                 json.dumps(msg).encode())))
            if seq % 10 == 0:
                await asyncio.wrap_future(link.spawn(link.nc.flush()))
        other = await _good_stream(bus_gateway, "still-served")
        return ws, other

    try:
        ws, other = asyncio.run(go())
        assert other
        deadline = time.monotonic() + 20
        while "cut off deaf" not in processes.log("gateway") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "cut off deaf" in processes.log("gateway")
    finally:
        link.close()


def test_ws_compression_is_negotiated_when_asked_for(nats_server, processes):
    port = free_port()
    processes.start("gw-deflate", "gateway", "--listen", f"127.0.0.1:{port}", "--ws-compression",
                    "--nats", nats_server.url)
    processes.wait_log("gw-deflate", "/v1/stream")

    async def go():
        async with connect(f"ws://127.0.0.1:{port}/v1/stream") as ws:
            await ws.send(_start(stream_id="deflate"))
            ready = json.loads(await ws.recv())
            return ws.response.headers.get("Sec-WebSocket-Extensions", ""), ready["type"]

    extensions, first = asyncio.run(go())
    assert "permessage-deflate" in extensions and first == "ready"
    processes.stop("gw-deflate")


def test_tls_gateway_serves_wss_with_its_certificate(nats_server, processes, tmp_path):
    import ssl

    cert, key = self_signed_cert(tmp_path)
    port = free_port()
    processes.start("gw-tls", "gateway", "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key",
                    str(key), "--nats", nats_server.url)
    processes.wait_log("gw-tls", "wss://")
    trusting = ssl.create_default_context(cafile=str(cert))

    async def go():
        async with connect(f"wss://127.0.0.1:{port}/v1/stream", ssl=trusting) as ws:
            await ws.send(_start(stream_id="tls"))
            ready = json.loads(await ws.recv())
        with pytest.raises(ssl.SSLCertVerificationError):  # a client that does not trust it refuses
            async with connect(f"wss://127.0.0.1:{port}/v1/stream", ssl=ssl.create_default_context()):
                pass
        return ready

    assert asyncio.run(go())["type"] == "ready"
