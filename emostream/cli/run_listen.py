"""The body of ``emostream listen`` (kept out of cli.py so the parser stays readable)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading

from emostream.cli.listen import (ListenOptions, ShutdownOnSignal, UsageError, load_recognizer, open_source,
                                      parse_inputs, stderr)

log = logging.getLogger(__name__)


def _summary(status: dict) -> str:
    lat = status["latency_ms"].get("vad_close_to_publish")
    parts = []
    for sid, st in status["streams"].items():
        extra = [f"{st[k]} {k.replace('_', ' ')}" for k in ("dropped", "failed") if st[k]]
        extra += [f"{v} {k.replace('_', ' ')}" for k, v in st["source_counters"].items() if v]
        parts.append(f"{sid}: {st['published']} of {st['utterances']} utterances published"
                     + (f" ({', '.join(extra)})" if extra else ""))
    if lat:
        parts.append(f"VAD close -> publish p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms over {lat['n']}")
    return "; ".join(parts)


def _fail(message: str, *opened) -> int:
    """A clear one-line error, everything opened so far closed, exit status 2."""
    stderr(message)
    for resource in opened:
        resource.close()
    return 2


def run_listen(args: argparse.Namespace) -> int:
    from rich.console import Console

    from emostream.cli.run_cluster import curve_options
    from emostream.sinks.publisher import Publisher, PublisherError
    from emostream.streaming.pipeline import PipelineConfig
    from emostream.streaming.segmenter import SegmenterConfig
    from emostream.streaming.sources import SourceError, resolve_input_device

    opts = ListenOptions(inputs=args.input, devices=args.device, realtime=not args.fast, rate=args.rate,
                         channels=args.channels, retry_device=not args.exit_on_device_loss)
    try:
        specs = parse_inputs(opts)
        config = PipelineConfig(
            segmenter=SegmenterConfig(frame_ms=args.vad_frame_ms, aggressiveness=args.vad_aggressiveness, end_silence_ms=args.end_silence_ms,
                                      pre_roll_ms=args.pre_roll_ms, min_speech_ms=args.min_speech_ms,
                                      max_utterance_s=args.max_utterance_s, turn_gap_ms=args.turn_gap_ms,
                                      partial_interval_s=args.partial_interval,
                                      speculate_silence_ms=args.speculate_silence_ms),
            max_pending=args.max_pending, batch_size=args.batch_size, status_interval_s=args.status_interval,
            workers=max(1, args.concurrency))
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        if args.concurrency < 1:
            raise UsageError(f"--concurrency must be at least 1, got {args.concurrency}")
        if args.duration is not None and args.duration <= 0:
            raise UsageError(f"--duration must be positive, got {args.duration}")
    except (UsageError, ValueError) as exc:
        stderr(str(exc))
        return 2

    sinks, sources = [], {}
    try:  # the cheapest checks first, before any audio device is touched: the log file, then the port
        if args.jsonl:
            from emostream.sinks.lines import JsonlSink

            sinks.append(JsonlSink(args.jsonl))
        publisher = Publisher(args.publish, curve=curve_options(args))
    except (OSError, PublisherError) as exc:
        return _fail(str(exc), *sinks)

    try:
        for spec in specs:  # then the inputs, before the slow model load: unknown device, unreadable file, bad rate
            if spec.kind == "microphone":
                resolve_input_device(spec.target)
            else:
                sources[spec.stream_id] = open_source(spec, opts)
    except SourceError as exc:
        return _fail(str(exc), *sources.values(), *sinks, publisher)

    if args.nats:  # edge mode: no models here; utterances go to workers on the bus
        return _run_edge(args, specs, opts, sources, sinks, publisher, config)

    console = Console()
    live_view = not args.quiet and console.is_terminal
    try:
        with console.status("loading models…", spinner="dots") if live_view else contextlib.nullcontext():
            recognizer = load_recognizer(args)
    except (RuntimeError, OSError, ValueError) as exc:
        return _fail(f"cannot load the models: {exc}", *sources.values(), *sinks, publisher)
    try:  # from here on the ASR model must be freed before the interpreter exits (see Recognizer.close)
        return _start(args, specs, opts, sources, sinks, publisher, recognizer, console, live_view, config)
    finally:
        recognizer.close()


def _run_edge(args, specs, opts, sources, sinks, publisher, config) -> int:
    """``listen --nats``: segment here, recognize on the workers, show and publish their results here."""
    import dataclasses
    import socket

    from rich.console import Console

    from emostream.cli.run_cluster import bus_config, connect
    from emostream.cluster.link import BusError
    from emostream.cluster.nats_queue import NatsWorkQueue

    try:
        bus = bus_config(args)
    except ValueError as exc:
        return _fail(str(exc), *sources.values(), *sinks, publisher)
    link = connect("listen", args, f"edge-{socket.gethostname()}-{os.getpid()}")
    if link is None:
        return _fail("no bus, nothing to do", *sources.values(), *sinks, publisher)
    try:
        try:
            queue = NatsWorkQueue(link, bus, role="produce", partials=args.partial_interval > 0)
        except BusError as exc:
            return _fail(str(exc), *sources.values(), *sinks, publisher)
        config = dataclasses.replace(config, role="edge")
        console = Console()
        live_view = not args.quiet and console.is_terminal
        try:
            return _start(args, specs, opts, sources, sinks, publisher, None, console, live_view, config,
                          queue=queue, link=link)
        finally:
            queue.close()  # what could not be sent by now is counted dropped
    finally:
        link.close()


def _start(args, specs, opts, sources, sinks, publisher, recognizer, console, live_view, config,
           queue=None, link=None) -> int:
    from emostream.streaming.pipeline import Pipeline
    from emostream.streaming.sources import SourceError

    try:
        for spec in specs:  # microphones open last: no audio piles up while the models load
            if spec.kind == "microphone":
                sources[spec.stream_id] = open_source(spec, opts)
    except SourceError as exc:
        return _fail(str(exc), *sources.values(), *sinks, publisher)
    ordered = [sources[s.stream_id] for s in specs]

    monitor = None
    if live_view:
        from emostream.sinks.monitor import Monitor

        monitor = Monitor(", ".join(s.description for s in ordered) + f" → {args.publish}", console=console,
                          end_silence_ms=config.segmenter.end_silence_ms)
        sinks.append(monitor)
        from rich.logging import RichHandler

        root = logging.getLogger()  # warnings print above the live view instead of through it
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(RichHandler(console=console, show_time=False, show_path=False))
    elif not args.quiet:
        from emostream.sinks.lines import LineSink

        sinks.append(LineSink())
        print(f"listening: {', '.join(s.description for s in ordered)}; publishing on {args.publish}",
              file=sys.stderr, flush=True)

    hooks = None
    if link is not None:  # edge: the workers' results for our streams come back to our sinks
        from emostream.cluster.hooks import EdgeHooks

        hooks = EdgeHooks(link, queue.session, [s.stream_id for s in ordered], args.result_wait)
    pipeline = Pipeline(recognizer, ordered, sinks, config, publisher=publisher, queue=queue, hooks=hooks)
    return _run(pipeline, recognizer, monitor, args)


def _run(pipeline, recognizer, monitor, args: argparse.Namespace) -> int:
    if monitor is not None:
        monitor.start()
    timer = None
    if args.duration:
        timer = threading.Timer(args.duration, pipeline.stop)
        timer.daemon = True
        timer.start()
    try:
        with ShutdownOnSignal(pipeline.stop, stderr):
            n_errors = pipeline.run()
        if timer is not None:
            timer.cancel()
    except KeyboardInterrupt:  # the second Ctrl-C: leave now, without waiting for the models
        if monitor is not None:
            monitor.close()
        stderr("aborted; utterances still in progress were not published")
        sys.stdout.flush()
        os._exit(130)  # model threads may still be running: skip the interpreter's teardown of them
    final = pipeline.status_message("stopped")
    if not args.quiet:
        print(_summary(final), file=sys.stderr, flush=True)
    # source errors were already logged by the pipeline (stderr), so they are not printed twice
    return 1 if n_errors else 0

