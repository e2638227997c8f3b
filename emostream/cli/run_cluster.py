"""The bodies of ``emostream worker``, ``gateway`` and ``bridge`` (cluster mode, README 'Cluster')."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading

log = logging.getLogger(__name__)


def say(command: str, message: str) -> None:
    print(f"emostream {command}: {message}", file=sys.stderr, flush=True)


def nats_options(args: argparse.Namespace, name: str):
    from emostream.cluster.link import NatsOptions

    return NatsOptions(url=args.nats, name=name, token=args.nats_token, user=args.nats_user,
                       password=args.nats_password or os.environ.get("EMOSTREAM_NATS_PASSWORD"),
                       creds=args.nats_creds, tls_ca=args.nats_tls_ca, connect_timeout_s=args.nats_connect_timeout)


def bus_config(args: argparse.Namespace):
    from emostream.cluster.wire import BusConfig

    return BusConfig(backlog_per_stream=args.backlog, ack_wait_s=args.ack_wait, max_deliver=args.max_deliver,
                     max_lag_s=args.max_lag, replicas=args.replicas)


def connect(command: str, args: argparse.Namespace, name: str):
    """-> a NatsLink, or None after saying why not."""
    from emostream.cluster.link import BusError, NatsLink

    try:
        return NatsLink(nats_options(args, name))
    except BusError as exc:
        say(command, str(exc))
        return None


def run_until_stopped(command: str, run, stop) -> None:
    """``run()`` in the main thread; the first SIGINT/SIGTERM calls ``stop`` (finish what is in
    hand), a second one exits at once."""
    from emostream.cli.listen import ShutdownOnSignal

    try:
        with ShutdownOnSignal(stop, lambda m: say(command, m), what="finishing what is in hand"):
            run()
    except KeyboardInterrupt:
        say(command, "aborted")
        sys.stdout.flush()
        os._exit(130)  # model and network threads may still run: skip the interpreter's teardown


def run_worker(args: argparse.Namespace) -> int:
    from emostream.cluster.link import BusError
    from emostream.cli.listen import load_recognizer
    from emostream.cluster.nats_queue import NatsWorkQueue
    from emostream.cluster.hooks import WorkerHooks
    from emostream.sinks.nats import NatsSink
    from emostream.streaming.pipeline import Pipeline, PipelineConfig

    name = args.name or f"worker-{socket.gethostname()}-{os.getpid()}"
    if args.concurrency < 1:
        say("worker", f"--concurrency must be at least 1, got {args.concurrency}")
        return 2
    try:
        bus = bus_config(args)
    except ValueError as exc:
        say("worker", str(exc))
        return 2
    link = connect("worker", args, name)
    if link is None:
        return 2
    try:
        try:
            recognizer = load_recognizer(args)
        except (RuntimeError, OSError, ValueError) as exc:
            say("worker", f"cannot load the models: {exc}")
            return 2
        try:
            try:
                queue = NatsWorkQueue(link, bus, role="consume", partials=not args.no_partials)
            except BusError as exc:
                say("worker", str(exc))
                return 2
            sink = NatsSink(link, name)
            pipeline = Pipeline(recognizer, [], [], PipelineConfig(workers=args.concurrency, worker_id=name,
                                                                   role="worker", batch_size=args.batch_size,
                                                                   status_interval_s=args.status_interval),
                                publisher=sink, queue=queue, open_ended=True, hooks=WorkerHooks())
            say("worker", f"{name}: taking utterances from {args.nats} ({args.concurrency} at a time)")
            run_until_stopped("worker", pipeline.run, pipeline.stop)
            queue.close()
            return 0
        finally:
            recognizer.close()
    finally:
        link.close()


def run_gateway(args: argparse.Namespace) -> int:
    from emostream.cli.run_serve import run_server, server_config
    from emostream.cluster.link import BusError
    from emostream.cluster.nats_queue import NatsWorkQueue
    from emostream.cluster.results import NatsResultFeed
    from emostream.sinks.nats import NatsSink
    from emostream.streaming.pipeline import Pipeline, PipelineConfig
    from emostream.streaming.segmenter import SegmenterConfig
    from emostream.web.gateway import Gateway, GatewayHooks

    try:
        config = server_config(args)
        bus = bus_config(args)
        seg = SegmenterConfig(partial_interval_s=args.partial_interval, speculate_silence_ms=0)
    except (ValueError, OSError) as exc:
        say("gateway", str(exc))
        return 2
    name = args.name or f"gateway-{socket.gethostname()}-{os.getpid()}"
    link = connect("gateway", args, name)
    if link is None:
        return 2
    try:
        try:
            queue = NatsWorkQueue(link, bus, role="produce", partials=args.partial_interval > 0)
        except BusError as exc:
            say("gateway", str(exc))
            return 2
        sink = NatsSink(link, name)
        gateway: Gateway | None = None
        pipeline = Pipeline(None, [], [], PipelineConfig(segmenter=seg, role="gateway",
                                                         status_interval_s=args.status_interval),
                            publisher=sink, queue=queue, open_ended=True,
                            hooks=GatewayHooks(lambda: gateway.status()))  # the gateway exists before it runs
        gateway = Gateway(config, NatsResultFeed(link), pipeline)
        scheme = "wss" if config.tls_cert else "ws"
        code = run_server("gateway", link, gateway, pipeline, args.listen,
                          lambda port: f"{scheme}://{config.host}:{port}/v1/stream -> {args.nats} "
                                       f"(the page: {config.page_url(port)})")
        if code == 0:
            queue.close()  # what could not be sent by now is counted dropped
        return code
    finally:
        link.close()


def run_bridge(args: argparse.Namespace) -> int:
    from emostream.sinks.publisher import Publisher, PublisherError
    from emostream.cluster.bridge import Bridge

    try:
        publisher = Publisher(args.publish, curve=curve_options(args))
    except (PublisherError, ValueError, OSError) as exc:
        say("bridge", str(exc))
        return 2
    link = connect("bridge", args, args.name or f"bridge-{socket.gethostname()}-{os.getpid()}")
    if link is None:
        publisher.close()
        return 2
    done = threading.Event()
    bridge = Bridge(link, publisher)
    try:
        link.call(bridge.start())
        say("bridge", f"{args.nats} -> {publisher.endpoint}")
        def serve() -> None:
            while not done.wait(0.5):  # short waits: the signal handler runs between them
                pass

        run_until_stopped("bridge", serve, done.set)
        link.call(bridge.stop())
        return 0
    finally:
        link.close()
        publisher.close()


def curve_options(args: argparse.Namespace):
    """The publisher's CURVE options from the ``--curve-*`` flags (cli.parser._curve_flags)."""
    from emostream.curve import CurveOptions

    return CurveOptions(getattr(args, "curve_secret_key", None), getattr(args, "curve_clients", None))
