"""The benchmark's pictures: latency CDFs (per SEC backend; emostream vs baseline; live, streaming vs
the 30 s window; the page vs listen) and latency vs streams (partials on and off)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _cdf(ax, values, label):
    v = np.sort(np.asarray(values, dtype=float))
    if v.size:
        ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=f"{label} (median {np.median(v):.0f} ms)")


def latency_cdf(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    live = results.get("live")
    page = results.get("page") if "raw_ms" in results.get("page", {}) else None
    panels = 2 + bool(live) + bool(page)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    a, b = axes[0], axes[1]
    for key, values in results["stages"]["raw_ms"].items():
        if key.startswith("sec["):
            _cdf(a, values, key[4:-1])
    a.set_title("SEC encoder latency per backend")
    a.set_xlabel("ms")
    a.set_ylabel("fraction of runs")
    for mode, values in results["utterances"]["raw_ms"].items():
        _cdf(b, values, {"emostream": "emostream (SEC ‖ ASR→text)", "sequential": "emostream, branches sequential",
                         "baseline": "baseline: ASR → text-only"}[mode])
    b.set_title("VAD close → published, per utterance")
    b.set_xlabel("ms")
    if live:
        c = axes[2]
        for name, label in (("emostream", "streaming (real-length ASR, speculation)"),
                            ("asr_full_context", "30 s ASR window, no speculation")):
            _cdf(c, live["raw_ms"][name]["vad_close_to_publish"], label)
            _cdf(c, live["raw_ms"][name]["speech_end_to_publish"], f"{label.split(' (')[0].split(',')[0]}: speech end →")
        c.set_title("live, real-time pace: VAD close (or speech end) → published")
        c.set_xlabel("ms")
    if page:
        d = axes[-1]
        _cdf(d, page["raw_ms"]["page"], "page in Chromium: painted")
        _cdf(d, page["raw_ms"]["listen"], "listen: published")
        d.set_title("end of speech → result, same recording")
        d.set_xlabel("ms")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"emostream bench · {results['machine']['cpus']} CPUs"
                 + (f" · {results['machine']['cuda_gpu']}" if results["machine"].get("cuda_gpu") else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def latency_vs_streams(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["streams"]["runs"]
    n = [r["streams"] for r in runs]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, style in (("median", "o-"), ("p95", "s--")):
        ax.plot(n, [r["latency_ms"].get("vad_close_to_publish", {}).get(key, np.nan) for r in runs], style,
                label=f"{key}, partials on")
    off = results["streams"].get("partials_off", {}).get("runs", [])
    for key, style in (("median", "o:"), ("p95", "s:")):
        if off:
            ax.plot([r["streams"] for r in off], [r["latency_ms"].get("vad_close_to_publish", {}).get(key, np.nan)
                                                  for r in off], style, alpha=0.6, label=f"{key}, partials off")
    other = results["streams"].get("baseline", {})
    one = other.get("runs", [])
    for key, style in (("median", "^-."), ("p95", "v-.")):
        if one:
            ax.plot([r["streams"] for r in one], [r["latency_ms"].get("vad_close_to_publish", {}).get(key, np.nan)
                                                  for r in one], style, alpha=0.6,
                    label=f"{key}, partials on, baseline ({other['flags']})")
    for r in runs:
        if not r["keeps_up"]:
            why = (f"{r['utterances']['dropped']} dropped" if r["utterances"]["dropped"] else
                   f"{r['utterances']['failed']} failed" if r["utterances"]["failed"] else "queue wait ≥ 1 s")
            ax.annotate(f"falls behind\n({why})", (r["streams"],
                        r["latency_ms"].get("vad_close_to_publish", {}).get("p95", 0)), fontsize=8, color="crimson")
    ax.set_xscale("log", base=2)
    ticks = sorted({r["streams"] for r in runs + off + one})
    ax.set_xticks(ticks, [str(x) for x in ticks])
    ax.set_xlabel("concurrent real-time streams")
    ax.set_ylabel("VAD close → published (ms)")
    bound = "≥ " if results["streams"]["max_realtime_streams_is_lower_bound"] else ""
    ax.set_title(f"Latency vs streams (max real-time: {bound}{results['streams']['max_realtime_streams']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
