"""The body of ``emostream serve``: the page and the WebSocket protocol over the pipeline in this
process (no bus); and the server settings it shares with ``emostream gateway``."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable

from emostream.cli.run_cluster import run_until_stopped, say

log = logging.getLogger(__name__)


def server_config(args: argparse.Namespace):
    """The WebSocket server's settings from ``cli.parser._server_flags``; ValueError or OSError (a bad
    certificate is reported now, not at the first client) says what is wrong."""
    from emostream.web.gateway import GatewayConfig

    host, _, port = args.listen.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--listen {args.listen!r}: HOST:PORT, e.g. 127.0.0.1:8765")
    config = GatewayConfig(host=host.strip("[]") or "127.0.0.1", port=int(port),
                           token=args.token or os.environ.get("EMOSTREAM_GATEWAY_TOKEN"), tls_cert=args.tls_cert,
                           tls_key=args.tls_key, max_streams=args.max_streams, compression=args.ws_compression,
                           allowed_origins=tuple(args.allow_origin))
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    config.ssl_context()
    if config.host not in ("127.0.0.1", "localhost", "::1") and not config.token:
        log.warning("listening on %s without --token: anyone who can reach it can stream", config.host)
    return config


def run_server(command: str, loop, gateway, pipeline, listen: str, announce: Callable[[int], str]) -> int:
    """Start the WebSocket server on ``loop`` (a ``LoopThread``: serve's own, or the NATS link), say
    where, run the pipeline until a signal, then end every stream (last results, 1001) and stop."""
    try:
        loop.call(gateway.start())
    except OSError as exc:
        say(command, f"cannot listen on {listen}: {exc.strerror or exc}")
        return 2

    say(command, announce(gateway.port))
    run_until_stopped(command, pipeline.run, lambda: gateway.stop(loop))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from emostream.cli.listen import load_recognizer
    from emostream.streaming.pipeline import PipelineConfig
    from emostream.streaming.segmenter import SegmenterConfig
    from emostream.web.local import LocalServer

    try:
        config = server_config(args)
        pipeline_config = PipelineConfig(
            segmenter=SegmenterConfig(partial_interval_s=args.partial_interval, end_silence_ms=args.end_silence_ms,
                                      speculate_silence_ms=args.speculate_silence_ms),
            max_pending=args.max_pending, batch_size=args.batch_size, status_interval_s=args.status_interval,
            role="serve", workers=max(1, args.concurrency))
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        if args.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, got {args.concurrency}")
    except (ValueError, OSError) as exc:
        say("serve", str(exc))
        return 2
    publisher = None
    if args.publish:
        from emostream.cli.run_cluster import curve_options
        from emostream.sinks.publisher import Publisher, PublisherError

        try:
            publisher = Publisher(args.publish, curve=curve_options(args))
        except (PublisherError, ValueError, OSError) as exc:
            say("serve", str(exc))
            return 2
    say("serve", "loading models…")
    try:
        recognizer = load_recognizer(args)
    except (RuntimeError, OSError, ValueError) as exc:
        say("serve", f"cannot load the models: {exc}")
        if publisher is not None:
            publisher.close()
        return 2
    try:
        server = LocalServer(recognizer, config, pipeline_config, publisher=publisher)
        try:
            def announce(port: int) -> str:
                url = config.page_url(port)
                scheme = "wss" if config.tls_cert else "ws"
                return (f"open {url} in a browser (streams: {scheme}://{url.split('://', 1)[1]}v1/stream"
                        + (f"; results also on {args.publish}" if args.publish else "") + ")")

            return run_server("serve", server.loop, server.gateway, server.pipeline, args.listen, announce)
        finally:
            server.close()
    finally:
        recognizer.close()
        if publisher is not None:
            publisher.close()
