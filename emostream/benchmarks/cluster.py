"""``emostream bench --cluster``: the cluster on this machine against the in-process pipeline.

Sections, one JSON (``cluster.json``) and one PNG (``cluster.png``):

1. **Latency.** The bench utterances, one after another with pauses, at real-time pace: through
   ``listen``'s in-process pipeline (speculative finals on, the default; and off), and through
   gateway (WebSocket) + NATS JetStream + one worker, interleaved, same models and threads. The
   clock starts when the VAD closes the utterance and stops when the consumer has the result: the
   in-process sink, or the WebSocket client (gateway and client on this machine, one wall clock).
2. **Streams.** 1, 2, 4, 8, 16, 24, 32 … real-time WebSocket clients at once, until the cluster
   stops keeping up (no utterance dropped or failed, every final delivered, p95 queue wait < 1 s),
   for each worker setup in ``WORKER_SETUPS``: one worker taking one utterance at a time
   (``--batch-size 1``, the worker before batching) against the default (batches once finals pile
   up); one worker recognizing two at a time (``--concurrency 2``, one model copy) both ways; and
   two workers (two model copies). The machine's cores are split among the recognitions at once
   (``--threads``). Streams per worker = the most that keep up / workers.
3. **Soak.** ``soak_streams`` real-time clients for ``soak_minutes`` (each streams a recording,
   ends, reconnects), RSS of every process sampled every 10 s; growth after the first 5 minutes,
   and the account: utterances = finals + dropped + failed (+ missing, which should be 0).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emostream.benchmarks.live import RATE, recording, run_path
from emostream.benchmarks.runner import machine_info, ratio, summarize
from emostream.benchmarks.streams import KEEP_UP_QUEUE_WAIT_P95_MS, KEEP_UP_RULE, stream_steps
from emostream.benchmarks.utterances import bench_utterances, dialogue
from emostream.cluster.client import stream_audio
from emostream.cluster.local import NatsServer, Processes, free_port, rss_mb


@dataclass
class ClusterBenchConfig:
    out: Path = Path("runs/bench/cluster")
    quick: bool = False
    threads: int = 2  # ASR threads for the latency comparison (as `listen --threads`)
    utterances: int = 12
    repeats: int = 2
    max_streams: int = 32
    stream_sentences: int = 6
    soak_minutes: float = 30.0
    soak_streams: int = 4
    soak_sentences: int = 8

    @classmethod
    def quick_config(cls, **kw) -> ClusterBenchConfig:
        kw.setdefault("soak_minutes", 2.0)
        return cls(quick=True, utterances=6, repeats=1, max_streams=4, stream_sentences=4, **kw)


def _say(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


class _Cluster:
    def __init__(self, root: Path) -> None:
        self.nats = NatsServer(root / "nats")
        self.nats.start()
        self.procs = Processes(root / "logs")
        self.gateway_port = free_port()
        self.url = f"ws://127.0.0.1:{self.gateway_port}/v1/stream"
        self.procs.start("gateway", "gateway", "--listen", f"127.0.0.1:{self.gateway_port}", "--nats", self.nats.url,
                         "--max-streams", "256")
        self.procs.wait_log("gateway", "/v1/stream")

    def workers(self, count: int, concurrency: int, threads: int, batch_size: int | None = None) -> list[str]:
        """``batch_size`` None: the worker's default."""
        names = [f"w{count}x{concurrency}b{batch_size or 'd'}-{i}" for i in range(count)]
        batch = [] if batch_size is None else ["--batch-size", str(batch_size)]
        for n in names:
            self.procs.start(n, "worker", "--nats", self.nats.url, "--name", n, "--concurrency", str(concurrency),
                             "--threads", str(threads), *batch)
        for n in names:
            self.procs.wait_log(n, "taking utterances", timeout=300)
        return names

    def stop_workers(self, names: list[str]) -> None:
        for n in names:
            self.procs.stop(n)

    def pids(self) -> dict[str, int]:
        out = {name: p.pid for name, p in self.procs.procs.items() if p.poll() is None}
        if self.nats.proc is not None:
            out["nats-server"] = self.nats.proc.pid
        return out

    def close(self) -> None:
        self.procs.stop_all()
        self.nats.stop()


async def _clients(url: str, audios: list[np.ndarray], prefix: str) -> list[tuple[float, object]]:
    """Stream each audio on its own connection at once; (start wall time, StreamResult) per client."""
    received: dict[int, list[tuple[float, dict]]] = {i: [] for i in range(len(audios))}

    async def one(i: int, audio: np.ndarray):
        t0 = time.time()
        r = await stream_audio(url, audio, RATE, f"{prefix}{i}",
                               on_message=lambda m: received[i].append((time.time(), m)))
        r.received = received[i]
        return t0, r

    return await asyncio.gather(*(one(i, a) for i, a in enumerate(audios)))


def _latency(cfg: ClusterBenchConfig, cluster: _Cluster, recognizer, utts) -> dict:
    from emostream.streaming.segmenter import SegmenterConfig

    audio, regions = recording(utts)
    paths = {"in_process": SegmenterConfig(), "in_process_no_speculation": SegmenterConfig(speculate_silence_ms=0)}
    raw: dict[str, dict[str, list[float]]] = {k: {"vad_close_to_consumer": [], "speech_end_to_consumer": []}
                                              for k in (*paths, "cluster")}
    raw["cluster"]["vad_close_to_bus_publish"] = []
    for rep in range(cfg.repeats):
        for name, seg in paths.items():
            r = run_path(recognizer, utts, "tcp://127.0.0.1:*", seg)
            raw[name]["vad_close_to_consumer"] += r["vad_close_to_publish"]
            raw[name]["speech_end_to_consumer"] += r["speech_end_to_publish"]
        (t0, res), = asyncio.run(_clients(cluster.url, [audio], f"latency{rep}-"))
        for t, m in res.received:
            if m.get("type") != "emotion" or m["utterance"]["duration_s"] > 8.0:
                continue
            raw["cluster"]["vad_close_to_consumer"].append((t - m["utterance"]["vad_closed_at"]) * 1e3)
            raw["cluster"]["vad_close_to_bus_publish"].append(m["timings_ms"]["vad_close_to_publish"])
        finals = [(t, m) for t, m in res.received if m.get("type") == "emotion"]
        for start, end, _, speech_end in regions:
            mine = [t for t, m in finals if start <= m["utterance"]["end_s"] * RATE < end]
            if mine:
                raw["cluster"]["speech_end_to_consumer"].append((mine[-1] - (t0 + speech_end / RATE)) * 1e3)
        _say(f"      repeat {rep + 1}/{cfg.repeats}: cluster {len(finals)} finals, "
             f"summary {res.summary}")
    summary = {name: {k: summarize(v) for k, v in d.items()} for name, d in raw.items()}
    close = {name: s["vad_close_to_consumer"] for name, s in summary.items()}
    return {
        "vad_close_to_consumer_ms": close,
        "speech_end_to_consumer_ms": {name: s["speech_end_to_consumer"] for name, s in summary.items()},
        "cluster_vad_close_to_bus_publish_ms": summary["cluster"]["vad_close_to_bus_publish"],
        "cluster_over_in_process": ratio(close["cluster"], close["in_process"], ("median", "p95")),
        "cluster_over_in_process_no_speculation": ratio(close["cluster"], close["in_process_no_speculation"],
                                                        ("median", "p95")),
        "note": "one real-time stream; cluster = WebSocket gateway + NATS JetStream + 1 worker (no speculative "
                "finals across the bus); utterances <= 8 s",
        "raw_ms": raw,
    }


def _streams_run(cluster: _Cluster, n: int, sentences: int) -> dict:
    audios = [dialogue(i, sentences) for i in range(n)]
    results = asyncio.run(_clients(cluster.url, audios, f"n{n}-"))
    totals = dict.fromkeys(("utterances", "finals", "dropped", "failed", "missing"), 0)
    closed_badly = 0
    lat, wait = [], []
    for _, r in results:
        if r.summary is None:
            closed_badly += 1
            continue
        for k in totals:
            totals[k] += r.summary[k]
        for t, m in r.received:
            if m.get("type") == "emotion":
                lat.append((t - m["utterance"]["vad_closed_at"]) * 1e3)
                wait.append(m["timings_ms"]["queue_wait"])
    queue_wait = summarize(wait)
    keeps_up = (closed_badly == 0 and totals["dropped"] == totals["failed"] == totals["missing"] == 0
                and totals["finals"] == totals["utterances"] > 0
                and queue_wait.get("p95", 0) < KEEP_UP_QUEUE_WAIT_P95_MS)
    return {"streams": n, "utterances": totals, "closed_without_summary": closed_badly, "keeps_up": keeps_up,
            "vad_close_to_client_ms": summarize(lat), "queue_wait_ms": queue_wait,
            "audio_s": round(max(len(a) for a in audios) / RATE, 1)}


# label: (workers, --concurrency each, --batch-size or None for the default); "before": as the worker
# was before it batched (one utterance at a time)
WORKER_SETUPS: dict[str, tuple[int, int, int | None]] = {
    "1_worker_batch_1": (1, 1, 1), "1_worker": (1, 1, None),
    "1_worker_x_2_batch_1": (1, 2, 1), "1_worker_x_2": (1, 2, None),
    "2_workers_x_1": (2, 1, None),
}


def _streams(cfg: ClusterBenchConfig, cluster: _Cluster, cores: int) -> dict:
    import os

    cores = cores or os.cpu_count() or 1
    out = {}
    for label, (count, concurrency, batch_size) in WORKER_SETUPS.items():
        threads = max(1, cores // (count * concurrency))
        names = cluster.workers(count, concurrency, threads, batch_size)
        runs = []
        try:
            for n in stream_steps(cfg.max_streams):
                run = _streams_run(cluster, n, cfg.stream_sentences)
                runs.append(run)
                _say(f"      {label}, {n} stream(s): {run['utterances']['finals']}/{run['utterances']['utterances']} "
                     f"finals, {run['utterances']['dropped']} dropped, p95 client "
                     f"{run['vad_close_to_client_ms'].get('p95', float('nan')):.0f} ms"
                     f"{'' if run['keeps_up'] else ' — falls behind'}")
                if not run["keeps_up"]:
                    break
        finally:
            cluster.stop_workers(names)
        kept = [r["streams"] for r in runs if r["keeps_up"]]
        most = max(kept) if kept else 0
        out[label] = {"workers": count, "concurrency": concurrency, "batch_size": batch_size or "default",
                      "threads_each": threads, "runs": runs, "max_realtime_streams": most,
                      "streams_per_worker": most / count,
                      "max_realtime_streams_is_lower_bound": bool(runs and runs[-1]["keeps_up"])}
    out["batched_over_batch_1"] = {
        after: {str(a["streams"]): ratio(a["vad_close_to_client_ms"], b["vad_close_to_client_ms"], ("median", "p95"))
                for a in out[after]["runs"] for b in out[before]["runs"] if a["streams"] == b["streams"]}
        for after, before in (("1_worker", "1_worker_batch_1"), ("1_worker_x_2", "1_worker_x_2_batch_1"))}
    out["keep_up_rule"] = KEEP_UP_RULE + ", every final delivered to its client"
    return out


def _soak(cfg: ClusterBenchConfig, cluster: _Cluster) -> dict:
    names = cluster.workers(2, 1, threads=1)
    end = time.monotonic() + cfg.soak_minutes * 60
    audios = [dialogue(i, cfg.soak_sentences) for i in range(cfg.soak_streams)]
    account = dict.fromkeys(("utterances", "finals", "dropped", "failed", "missing"), 0)
    sessions = {"completed": 0, "without_summary": 0}
    samples: list[dict] = []
    t0 = time.monotonic()
    stop = threading.Event()

    def sample() -> None:
        import os

        while not stop.wait(10.0):
            row = {"t_s": round(time.monotonic() - t0, 1)}
            for name, pid in {**cluster.pids(), "bench (clients)": os.getpid()}.items():
                row[name] = rss_mb(pid)
            samples.append(row)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    async def client(i: int) -> None:
        k = 0
        while time.monotonic() < end:
            r = await stream_audio(cluster.url, audios[i], RATE, f"soak{i}-{k % 3}")
            k += 1
            if r.summary is None:
                sessions["without_summary"] += 1
                continue
            sessions["completed"] += 1
            for key in account:
                account[key] += r.summary[key]

    async def run_all() -> None:
        await asyncio.gather(*(client(i) for i in range(cfg.soak_streams)))

    try:
        asyncio.run(run_all())
    finally:
        stop.set()
        sampler.join(15)
        cluster.stop_workers(names)
    growth = {}
    for name in samples[0] if samples else []:
        if name == "t_s":
            continue
        settled = [(s["t_s"], s[name]) for s in samples if s.get(name) is not None and s["t_s"] >= 300]
        if len(settled) < 6:
            continue
        t, v = np.array(settled).T
        first, last = v[t < t[0] + 300].mean(), v[t > t[-1] - 300].mean()
        slope = float(np.polyfit(t / 3600, v, 1)[0])
        growth[name] = {"mb_first_5_min_after_warmup": round(float(first), 1), "mb_last_5_min": round(float(last), 1),
                        "growth_pct": round(float(100 * (last - first) / first), 2),
                        "slope_mb_per_hour": round(slope, 2)}
    return {"minutes": cfg.soak_minutes, "streams": cfg.soak_streams, "workers": "2 x 1", "account": account,
            "sessions": sessions,
            "nothing_lost": account["missing"] == 0 and sessions["without_summary"] == 0
            and account["finals"] + account["dropped"] + account["failed"] == account["utterances"],
            "rss_growth_after_5_min": growth,
            "flat": (all(g["growth_pct"] < 5.0 for g in growth.values()) if growth else None),
            "rss_samples_mb": samples,
            "note": "RSS growth compares the mean of minutes 5-10 with the mean of the last 5 minutes; "
                    "shorter soaks than 10 minutes report no growth figures"}


def run_cluster_bench(cfg: ClusterBenchConfig) -> dict:
    from emostream.engine.asr import ASRConfig
    from emostream.engine.recognizer import Recognizer

    t_start = time.monotonic()
    results: dict = {"benchmark": "emostream bench --cluster", "version": 1,
                     "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(),
                     "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}}
    with tempfile.TemporaryDirectory(prefix="emostream-cluster-") as tmp:
        _say("starting nats-server and a gateway…")
        cluster = _Cluster(Path(tmp))
        try:
            _say(f"[1/3] latency: {cfg.utterances} utterances at real-time pace, in process vs through the "
                 f"cluster, × {cfg.repeats}…")
            recognizer = Recognizer(asr=ASRConfig(cpu_threads=cfg.threads), torch_threads=max(1, cfg.threads // 2))
            recognizer.warm_up()
            names = cluster.workers(1, 1, threads=cfg.threads)
            try:
                results["latency"] = _latency(cfg, cluster, recognizer, bench_utterances(cfg.utterances))
            finally:
                cluster.stop_workers(names)
                recognizer.close()
            _say(f"[2/3] real-time streams through the cluster (1, 2, 4 … ≤ {cfg.max_streams}) for "
                 f"{', '.join(WORKER_SETUPS)}…")
            results["streams"] = _streams(cfg, cluster, cfg.threads)
            if cfg.soak_minutes > 0:
                _say(f"[3/3] soak: {cfg.soak_streams} real-time streams for {cfg.soak_minutes:g} min, RSS every 10 s…")
                results["soak"] = _soak(cfg, cluster)
        finally:
            cluster.close()
    results["wall_s"] = round(time.monotonic() - t_start, 1)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "cluster.json").write_text(json.dumps(results, indent=1))
    plot(results, cfg.out / "cluster.png")
    return results


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    ax = axes[0]
    for name, d in results["latency"]["raw_ms"].items():
        v = np.sort(np.asarray(d["vad_close_to_consumer"]))
        if v.size:
            ax.plot(v, np.arange(1, v.size + 1) / v.size, label=name.replace("_", " "))
    ax.set(xlabel="VAD close → result at the consumer (ms)", ylabel="share of utterances",
           title="one real-time stream")
    ax.legend()
    ax = axes[1]
    for label, d in results["streams"].items():
        if isinstance(d, dict) and "runs" in d:
            xs = [r["streams"] for r in d["runs"]]
            ax.plot(xs, [r["vad_close_to_client_ms"].get("p95", np.nan) for r in d["runs"]], "o-",
                    label=label.replace("_", " "))
            for r in d["runs"]:
                if not r["keeps_up"]:
                    ax.plot(r["streams"], r["vad_close_to_client_ms"].get("p95", np.nan), "x", color="crimson",
                            markersize=10)
    ax.set(xscale="log", xlabel="real-time streams", ylabel="p95 VAD close → client (ms)",
           title="streams through the cluster (× falls behind)")
    steps = stream_steps(results["config"]["max_streams"])
    ax.set_xticks(steps, [str(n) for n in steps])
    ax.minorticks_off()
    ax.legend()
    ax = axes[2]
    soak = results.get("soak")
    if soak and soak["rss_samples_mb"]:
        t = [s["t_s"] / 60 for s in soak["rss_samples_mb"]]
        for name in soak["rss_samples_mb"][0]:
            if name != "t_s":
                ax.plot(t, [s.get(name) for s in soak["rss_samples_mb"]], label=name)
        ax.axvline(5, color="grey", linestyle=":")
        ax.set(xlabel="minutes", ylabel="RSS (MB)", title=f"soak: {soak['streams']} streams")
        ax.legend(fontsize=7)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no soak in this run (--soak-minutes 0)", ha="center", va="center", color="grey")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_cluster_summary(results: dict, out: Path) -> None:
    lat = results["latency"]
    print(f"emostream bench --cluster — {results['machine']['cpus']} CPUs, {results['wall_s']:.0f} s")
    print("VAD close -> result at the consumer (ms)      median      p95")
    for name, v in lat["vad_close_to_consumer_ms"].items():
        print(f"  {name:40s} {v.get('median', float('nan')):8.1f} {v.get('p95', float('nan')):8.1f}")
    r1, r2 = lat["cluster_over_in_process_no_speculation"], lat["cluster_over_in_process"]
    print(f"  cluster / in process without speculation: median {r1.get('median', float('nan')):.3f}, "
          f"p95 {r1.get('p95', float('nan')):.3f}; cluster / in process (default): median "
          f"{r2.get('median', float('nan')):.2f}, p95 {r2.get('p95', float('nan')):.2f}")
    for label, d in results["streams"].items():
        if isinstance(d, dict) and "runs" in d:
            bound = "≥ " if d["max_realtime_streams_is_lower_bound"] else ""
            print(f"  real-time streams, {label.replace('_', ' ')} (threads {d['threads_each']} each): "
                  f"{bound}{d['max_realtime_streams']}, {d['streams_per_worker']:g} per worker process")
    soak = results.get("soak")
    if soak:
        a = soak["account"]
        print(f"soak {soak['minutes']:g} min × {soak['streams']} streams: {a['utterances']} utterances = "
              f"{a['finals']} finals + {a['dropped']} dropped + {a['failed']} failed (missing {a['missing']}); "
              f"{soak['sessions']['completed']} sessions; RSS flat (< 5 % growth after 5 min): "
              f"{'n/a, soak under 10 min' if soak['flat'] is None else soak['flat']}")
        for name, g in soak["rss_growth_after_5_min"].items():
            print(f"  {name:24s} {g['mb_first_5_min_after_warmup']:8.1f} -> {g['mb_last_5_min']:8.1f} MB "
                  f"({g['growth_pct']:+.2f} %, {g['slope_mb_per_hour']:+.1f} MB/h)")
    print(f"wrote {out / 'cluster.json'}, {out / 'cluster.png'}")
