"""``emostream bench``: the latency suite. One run, one JSON file with every figure, two PNGs.

    emostream bench --quick                 # about 8 min on 2 CPU cores
    emostream bench --out runs/bench/full   # more utterances, repetitions and streams
    emostream bench --compare old.json new.json

Sections: (1) per-stage latency per SEC backend, (2) per-utterance latency: concurrent vs
sequential branches vs the RealtimeSTT-style baseline, (3) live: the utterances fed through the
segmenter at real-time pace, the streaming path (real-length ASR, speculative finals, partials)
against the 30 s-window path, plus each ASR path's WER, (4) the page: the same recording spoken into
Chromium against ``listen``'s path, end of speech -> result, and the browser's CPU, (5) real-time
streams until the machine stops keeping up, partials on and off, (6) real-time factor and peak memory. Warm-up runs are
excluded; repetitions are in the JSON ``config``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# the streams section's same-run baseline: how one process recognized before batching and concurrency
BASELINE = "--concurrency 1 --batch-size 1"


@dataclass
class BenchConfig:
    out: Path = Path("runs/bench")
    quick: bool = False
    threads: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    concurrency: int = field(default_factory=lambda: _pipeline_defaults().workers)  # as listen --concurrency
    backends: tuple[str, ...] = ("torch", "onnxruntime", "onnxruntime-cuda", "tensorrt")
    sec_backend: str = "auto"  # what the pipeline sections use, as listen would
    utterances: int = 12
    ravdess_clips: int = 8
    warmup: int = 2
    repeats: int = 5
    max_streams: int = 32
    stream_sentences: int = 8
    live_repeats: int = 2
    page: bool = True  # needs Chromium and Playwright; skipped with the reason when absent
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)

    @classmethod
    def quick_config(cls, **kw) -> BenchConfig:
        return cls(quick=True, utterances=6, ravdess_clips=4, warmup=1, repeats=3, max_streams=4,
                   stream_sentences=4, live_repeats=1, batch_sizes=(1, 4, 8), **kw)


def _pipeline_defaults():
    from emostream.streaming.pipeline import PipelineConfig

    return PipelineConfig()


def _endpoints():
    while True:
        yield "tcp://127.0.0.1:*"  # the publisher binds a free port


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def references(utts) -> dict[str, str]:
    """The words of each bench utterance: the espeak-ng sentence, or RAVDESS's statement (5th field)."""
    from emostream.benchmarks.utterances import SENTENCES
    from emostream.engine.training.corpora import RAVDESS_STATEMENTS

    out = {}
    for i, u in enumerate(utts):
        if u.name.startswith("espeak-"):
            out[u.name] = SENTENCES[int(u.name.split("-")[1])]
        elif u.name.startswith("ravdess-") and len(u.name.split("-")) >= 6:
            out[u.name] = RAVDESS_STATEMENTS.get(int(u.name.split("-")[5]), "")
    return {k: v for k, v in out.items() if v}


def run_bench(cfg: BenchConfig) -> dict:
    from emostream.benchmarks import batching, live, page, plots, stages, streams
    from emostream.benchmarks.runner import gpu_memory_mb, machine_info, peak_rss_mb
    from emostream.benchmarks.utterances import bench_utterances
    from emostream.engine.asr import ASRConfig
    from emostream.engine.recognizer import Recognizer

    t_start = time.monotonic()
    sec_threads = max(1, cfg.threads // 2)
    _say(f"loading models (ASR {cfg.threads} threads × {cfg.concurrency} at once, SEC/text {sec_threads}, as "
         "`emostream listen` splits them)…")
    recognizer = Recognizer(asr=ASRConfig(cpu_threads=cfg.threads, parallel=cfg.concurrency),
                            torch_threads=sec_threads, sec_backend=cfg.sec_backend)
    recognizer.warm_up()
    rss_models = peak_rss_mb()
    utts = bench_utterances(cfg.utterances, cfg.ravdess_clips)
    endpoints = _endpoints()
    results: dict = {
        "benchmark": "emostream bench", "version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "config": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
                   "sec_threads": sec_threads, "asr_threads": cfg.threads,
                   "pipeline_sec_backend": recognizer.sec_backend.name, "asr_model": recognizer.asr.model_id,
                   "asr_compute": f"{recognizer.asr.device}/{recognizer.asr.compute_type}",
                   "utterances": [{"name": u.name, "seconds": round(u.seconds, 2)} for u in utts],
                   "note": "warm-up runs excluded; every figure is over warmup+repeats calls per utterance minus "
                           "the warm-up"},
    }

    _say(f"[1/5] per-stage latency: {len(utts)} utterances × {cfg.repeats} runs per backend…")
    done = itertools.count(1)
    results["stages"] = stages.stage_latency(
        recognizer, utts, list(cfg.backends), sec_threads, cfg.warmup, cfg.repeats,
        progress=lambda: _say(f"      utterance {next(done)}/{len(utts)}"))
    for name, why in results["stages"]["sec_backends_skipped"].items():
        _say(f"      SEC backend {name} skipped: {why}")

    _say(f"[1b/5] throughput per stage against batch size {list(cfg.batch_sizes)}…")
    results["batching"] = batching.stage_throughput(
        recognizer, utts, cfg.batch_sizes, cfg.warmup, cfg.repeats,
        progress=lambda b, row: _say(f"      batch {b}: " + ", ".join(
            f"{k} {v['utterances_per_s']:.1f}/s ({v['batch_ms']:.0f} ms)" for k, v in row.items())))

    _say(f"[2/5] per-utterance latency, emostream vs sequential vs baseline: {len(utts)} × {cfg.repeats}…")
    done = itertools.count(1)
    results["utterances"] = stages.utterance_latency(
        recognizer, utts, next(endpoints), cfg.warmup, cfg.repeats,
        progress=lambda: _say(f"      utterance {next(done)}/{len(utts)}"))

    _say(f"[3/5] live: {len(utts)} utterances at real-time pace through the segmenter, streaming path vs "
         f"30 s window, × {cfg.live_repeats}…")
    results["live"] = live.live_latency(
        recognizer, utts, endpoints, cfg.live_repeats, workers=cfg.concurrency,
        progress=lambda name, rep, r: _say(f"      {name}: {r['finals']} finals, {r['partials']} partials, "
                                           f"{r['speculated']} speculative finals used"))
    results["live"]["asr_paths"] = live.asr_paths(recognizer, utts, references(utts))

    if cfg.page:
        _say(f"[4/5] the page: the same {len(utts)} utterances spoken into Chromium (fake microphone) vs listen, "
             f"× {cfg.live_repeats}…")
        results["page"] = page.page_latency(
            recognizer, utts, endpoints, cfg.live_repeats, workers=cfg.concurrency,
            progress=lambda rep, r, shown: _say(f"      page: {r['finals']} finals ({r['listen_finals']} via listen), "
                                                f"{len(shown)} of {r['spoken']} timed; browser CPU idle "
                                                f"{r['browser_cpu']['idle']['percent_of_one_core']} %, streaming "
                                                f"{r['browser_cpu']['streaming']['percent_of_one_core']} % of a core"))
        if "skipped" in results["page"]:
            _say(f"      skipped: {results['page']['skipped']}")
    else:
        results["page"] = {"skipped": "--no-page"}

    def scaled(r) -> None:
        _say(f"      {r['streams']} stream(s){'' if r['concurrent_branches'] else ', sequential'}, "
             f"{r['workers']} at once, batch {r['batch_size']} (finals' mean {r['finals_batch_mean']}), partials "
             f"{'on' if r['partials'] else 'off'}: {r['utterances']['published']}/{r['utterances']['utterances']} "
             f"published, {r['utterances']['partials']} partials ({r['utterances']['partials_skipped']} skipped, "
             f"{r['utterances']['partials_stretched']} stretched), "
             f"p95 {r['latency_ms'].get('vad_close_to_publish', {}).get('p95', float('nan')):.0f} ms"
             f"{'' if r['keeps_up'] else ' — falls behind'}")

    _say(f"[5/5] real-time streams (1, 2, 4 … ≤ {cfg.max_streams}), {cfg.stream_sentences} sentences each, "
         f"partials on, then off…")
    results["streams"] = streams.stream_scaling(recognizer, cfg.max_streams, cfg.stream_sentences, endpoints,
                                                progress=lambda n, r: scaled(r), workers=cfg.concurrency)
    off = streams.stream_scaling(recognizer, cfg.max_streams, cfg.stream_sentences, endpoints,
                                 progress=lambda n, r: scaled(r), partials=False, workers=cfg.concurrency)
    _say(f"      the same, partials on, as before batching (one at a time, one worker: {BASELINE}) for the "
         "ratios…")
    alt = streams.stream_scaling(recognizer, cfg.max_streams, cfg.stream_sentences, endpoints,
                                 progress=lambda n, r: scaled(r), batch_size=1, workers=1)
    results["streams"]["baseline"] = {"flags": BASELINE, **{
        k: alt[k] for k in ("runs", "max_realtime_streams", "max_realtime_streams_is_lower_bound")}}
    results["streams"]["default_over_baseline"] = {
        str(a["streams"]): streams.ratio(a["latency_ms"].get("vad_close_to_publish", {}),
                                         b["latency_ms"].get("vad_close_to_publish", {}), ("median", "p95"))
        for a in results["streams"]["runs"] for b in alt["runs"] if a["streams"] == b["streams"]}
    results["streams"]["partials_off"] = {k: off[k] for k in ("runs", "max_realtime_streams",
                                                              "max_realtime_streams_is_lower_bound")}
    results["memory"] = {"peak_rss_mb_after_loading": rss_models, "peak_rss_mb": peak_rss_mb(),
                         "gpu_torch_max_allocated_mb": gpu_memory_mb(),
                         "note": "GPU figure: torch's allocator only (TensorRT and ONNX Runtime allocate their own)"}
    results["wall_s"] = round(time.monotonic() - t_start, 1)
    recognizer.close()

    cfg.out.mkdir(parents=True, exist_ok=True)
    json_path = cfg.out / "results.json"
    json_path.write_text(json.dumps(results, indent=1))
    plots.latency_cdf(results, cfg.out / "latency_cdf.png")
    plots.latency_vs_streams(results, cfg.out / "latency_vs_streams.png")
    batching.plot(results["batching"], cfg.out / "batching.png")
    return results


def print_summary(results: dict, out: Path) -> None:
    st, ut, sm = results["stages"], results["utterances"], results["streams"]
    print(f"emostream bench — {results['machine']['cpus']} CPUs, {results['machine'].get('cuda_gpu') or 'no GPU'}, "
          f"{results['wall_s']:.0f} s")
    print("per stage (ms)          median      p95      p99    real-time factor")
    for k, v in st["stages_ms"].items():
        print(f"  {k:20s} {v['median']:8.1f} {v['p95']:8.1f} {v['p99']:8.1f}    {st['real_time_factor'][k]:.4f}")
    if "onnxruntime_over_torch" in st:
        print(f"  SEC onnxruntime / torch: median {st['onnxruntime_over_torch']['median']:.3f}, "
              f"p95 {st['onnxruntime_over_torch']['p95']:.3f}")
    for key in ("onnxruntime_cuda_over_torch_cuda", "tensorrt_over_torch_cuda"):
        if key in st:
            print(f"  SEC {key.replace('_over_', ' / ').replace('_', '-')}: median {st[key]['median']:.3f}, "
                  f"p95 {st[key]['p95']:.3f}")
    for name, why in st["sec_backends_skipped"].items():
        print(f"  (SEC {name} not run: {why})")
    bt = results.get("batching")
    if bt:
        print("throughput vs batch size (utterances/s; batch ms)  " + "  ".join(f"{b:>12}" for b in bt["batch_sizes"]))
        for stage in ("asr", "text", "sec", "whole"):
            print(f"  {stage:46s} " + "  ".join(f"{bt['stages'][str(b)][stage]['utterances_per_s']:6.1f} "
                                                 f"({bt['stages'][str(b)][stage]['batch_ms']:4.0f})"
                                                 for b in bt["batch_sizes"]))
    print("VAD close -> published, per utterance (ms)   median      p95      p99")
    for k, v in ut["vad_close_to_publish_ms"].items():
        print(f"  {k:40s} {v['median']:8.1f} {v['p95']:8.1f} {v['p99']:8.1f}")
    print(f"  emostream / baseline: median {ut['emostream_over_baseline']['median']:.3f}, "
          f"p95 {ut['emostream_over_baseline']['p95']:.3f};  emostream / sequential: median "
          f"{ut['emostream_over_sequential']['median']:.3f}, p95 {ut['emostream_over_sequential']['p95']:.3f}")
    lv = results.get("live")
    if lv:
        print("live, real-time pace through the segmenter (ms)   median      p95")
        for k, v in lv["vad_close_to_publish_ms"].items():
            print(f"  VAD close -> published, {k:24s} {v.get('median', float('nan')):8.1f} {v.get('p95', float('nan')):8.1f}")
        for k, v in lv["speech_end_to_publish_ms"].items():
            print(f"  speech end -> published, {k:23s} {v.get('median', float('nan')):8.1f} {v.get('p95', float('nan')):8.1f}")
        r = lv["emostream_over_full_context"]
        p = lv["partials"]
        print(f"  emostream / full context: median {r.get('median', float('nan')):.3f}, p95 {r.get('p95', float('nan')):.3f}; "
              f"speculative finals used {lv['speculative_finals']['used']}/{lv['speculative_finals']['finals']}, "
              f"discarded {lv['speculative_finals']['discarded']}")
        print(f"  partials: onset -> first median {p['onset_to_first_partial_ms'].get('median', float('nan')):.0f} ms, "
              f"p95 {p['onset_to_first_partial_ms'].get('p95', float('nan')):.0f}; interval median "
              f"{p['interval_ms'].get('median', float('nan')):.0f} ms, p95 {p['interval_ms'].get('p95', float('nan')):.0f}; "
              f"{p['published']} published, {p['skipped']} skipped")
        for k, v in lv["asr_paths"].items():
            print(f"  ASR {k:4s} window: WER {v['wer']} on {v['n']} utterances, short window not trusted "
                  f"{v['short_window_not_trusted_before_fallback']}, loops dropped {v['loops_dropped_not_published']}")
    pg = results.get("page", {})
    if "skipped" in pg:
        print(f"page: not run ({pg['skipped']})")
    elif pg:
        print("page vs listen, end of speech -> result (ms)        median      p95")
        for k, label in (("page", "page (painted in Chromium)"), ("listen", "listen (published)")):
            v = pg["speech_end_to_result_ms"][k]
            print(f"  {label:46s} {v.get('median', float('nan')):8.1f} {v.get('p95', float('nan')):8.1f}")
        r = pg["page_over_listen"]
        idle = [run["browser_cpu"]["idle"]["percent_of_one_core"] for run in pg["runs"]]
        busy = [run["browser_cpu"]["streaming"]["percent_of_one_core"] for run in pg["runs"]]
        print(f"  page / listen: median {r.get('median', float('nan')):.3f}, p95 {r.get('p95', float('nan')):.3f}; "
              f"browser CPU (% of one core) idle {max(idle):.1f}, streaming {max(busy):.1f} (worst run)")
    print("real-time streams            published  dropped   median ms   p95 ms   keeps up")
    for r in sm["runs"] + [sm["sequential_single_stream"]] + sm.get("baseline", {}).get("runs", []):
        lat = r["latency_ms"].get("vad_close_to_publish", {})
        name = (f"{r['streams']}{'' if r['concurrent_branches'] else ' (sequential)'}"
                f" ({r.get('workers', 1)}×, batch {r.get('batch_size')})")
        print(f"  {name:26s} {r['utterances']['published']:5d}/{r['utterances']['utterances']:<4d} "
              f"{r['utterances']['dropped']:6d} {lat.get('median', float('nan')):11.1f} {lat.get('p95', float('nan')):8.1f}"
              f"   {'yes' if r['keeps_up'] else 'no'}")
    if "partials_off" in sm:
        off = sm["partials_off"]
        print(f"  partials off: max real-time streams {'≥ ' if off['max_realtime_streams_is_lower_bound'] else ''}"
              f"{off['max_realtime_streams']}")
    if "baseline" in sm:
        alt = sm["baseline"]
        print(f"  baseline ({alt['flags']}): max real-time streams "
              f"{'≥ ' if alt['max_realtime_streams_is_lower_bound'] else ''}{alt['max_realtime_streams']}; default / "
              "baseline, p95: " + ", ".join(
                  f"{n} streams {r.get('p95', float('nan')):.3f}" for n, r in sm["default_over_baseline"].items()))
    bound = "≥ " if sm["max_realtime_streams_is_lower_bound"] else ""
    print(f"  max real-time streams: {bound}{sm['max_realtime_streams']} ({sm['keep_up_rule']}); single stream "
          f"concurrent / sequential: median {sm['single_stream_concurrent_over_sequential']['median']:.3f}, "
          f"p95 {sm['single_stream_concurrent_over_sequential']['p95']:.3f}")
    m = results["memory"]
    print(f"peak RSS {m['peak_rss_mb']:.0f} MB (models loaded: {m['peak_rss_mb_after_loading']:.0f} MB)"
          + (f"; GPU (torch allocator) {m['gpu_torch_max_allocated_mb']:.0f} MB" if m["gpu_torch_max_allocated_mb"]
             else ""))
    print(f"wrote {out / 'results.json'}, {out / 'latency_cdf.png'}, {out / 'latency_vs_streams.png'}, "
          f"{out / 'batching.png'}")
