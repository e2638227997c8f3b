"""`emostream bench` end to end on a tiny configuration: every section runs on real utterances,
the JSON has the figures, the PNGs are written, and --compare reads them back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from emostream.benchmarks.compare import compare
from emostream.benchmarks.runner import summarize
from emostream.benchmarks.suite import BenchConfig, run_bench

pytestmark = pytest.mark.slow  # benchmarks


def test_summarize_quotes_median_and_tails():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median"] == 3.0 and s["p95"] > 4.0 and s["p99"] >= s["p95"] and s["n"] == 5
    assert summarize([]) == {"n": 0}


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory, speech):
    out = tmp_path_factory.mktemp("bench")
    cfg = BenchConfig(out=out, threads=2, backends=("torch", "onnxruntime", "tensorrt"), utterances=2,
                      ravdess_clips=1, warmup=1, repeats=2, max_streams=1, stream_sentences=2, live_repeats=1,
                      batch_sizes=(1, 2))
    return run_bench(cfg), out


def test_tiny_bench_writes_every_section(tiny_results):
    results, out = tiny_results
    saved = json.loads((out / "results.json").read_text())
    assert saved["machine"]["cpus"] and saved["config"]["repeats"] == 2
    stages = saved["stages"]["stages_ms"]
    assert {"sec[torch]", "sec[onnxruntime]", "asr", "text", "fusion", "fusion[searched]"} <= set(stages)
    assert "tensorrt" in saved["stages"]["sec_backends_skipped"] or "sec[tensorrt]" in stages
    assert stages["asr"]["n"] == 2 * len(saved["config"]["utterances"])
    assert saved["stages"]["onnxruntime_over_torch"]["median"] > 0
    assert all(0 < v < 5 for v in saved["stages"]["real_time_factor"].values())
    utt = saved["utterances"]["vad_close_to_publish_ms"]
    assert set(utt) == {"emostream", "sequential", "baseline"} and all(v["n"] > 0 for v in utt.values())
    assert saved["utterances"]["emostream_over_baseline"]["median"] > 0
    streams = saved["streams"]
    assert streams["runs"][0]["utterances"]["published"] == 2 and streams["runs"][0]["keeps_up"]
    assert streams["sequential_single_stream"]["concurrent_branches"] is False
    assert streams["runs"][0]["partials"] is True
    assert streams["partials_off"]["runs"][0]["partials"] is False
    assert streams["partials_off"]["runs"][0]["utterances"]["partials"] == 0
    assert streams["runs"][0]["batch_size"] == 8 and streams["baseline"]["runs"][0]["batch_size"] == 1
    assert streams["runs"][0]["workers"] == saved["config"]["concurrency"]
    assert streams["baseline"]["runs"][0]["workers"] == 1
    assert "1" in streams["default_over_baseline"]
    batching = saved["batching"]
    assert set(batching["stages"]) == {"1", "2"}
    for row in batching["stages"].values():
        assert {"asr", "text", "sec", "whole"} <= set(row) and all(v["utterances_per_s"] > 0 for v in row.values())
    live = saved["live"]
    close = live["vad_close_to_publish_ms"]
    assert set(close) == {"emostream", "asr_full_context"} and all(v["n"] >= 2 for v in close.values())
    assert 0 <= live["emostream_over_full_context"]["median"] < 1  # a speculated final is out at the close
    assert all(v["n"] >= 2 for v in live["speech_end_to_publish_ms"].values())
    assert live["counts"]["asr_full_context"]["partials"] == 0 and live["counts"]["asr_full_context"]["speculated"] == 0
    assert live["speculative_finals"]["used"] >= 1, "an idle machine speculates"
    assert live["partials"]["published"] >= 1 and live["partials"]["onset_to_first_partial_ms"]["n"] >= 1
    paths = live["asr_paths"]
    assert set(paths) == {"real", "full"} and paths["real"]["n"] == len(saved["config"]["utterances"])
    assert 0 <= paths["real"]["wer"] < 0.5
    assert paths["real"]["loops_dropped_not_published"] == 0
    assert saved["memory"]["peak_rss_mb"] > 100
    for png in ("latency_cdf.png", "latency_vs_streams.png", "batching.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_mode_prints_ratios(tiny_results, tmp_path):
    _, out = tiny_results
    rows = compare(out / "results.json", out / "results.json")
    assert rows and all(r[4] == pytest.approx(1.0) for r in rows)
    assert any(name == "stages.stages_ms.asr" and k == "median" for name, k, *_ in rows)
    proc = subprocess.run([sys.executable, "-m", "emostream.cli.main", "bench", "--compare",
                           str(out / "results.json"), str(out / "results.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "new/old" in proc.stdout and "Traceback" not in proc.stderr
    missing = subprocess.run([sys.executable, "-m", "emostream.cli.main", "bench", "--compare", "nope.json",
                              str(out / "results.json")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such results file: nope.json" in missing.stderr


def test_page_section_times_the_page_against_listen(tiny_results):
    from services import unavailable

    page = tiny_results[0]["page"]
    if "skipped" in page:
        unavailable(page["skipped"])
    timed = page["speech_end_to_result_ms"]
    assert timed["page"]["n"] >= 2 and timed["listen"]["n"] >= 2, timed
    assert 0 < timed["page"]["median"] < 5000 and page["page_over_listen"]["median"] > 0
    run = page["runs"][0]
    from emostream.benchmarks.live import LEAD_S

    assert run["finals"] >= 2 and 0 <= run["lost_lead_ms"] < LEAD_S * 1000  # no speech lost at the start
    assert run["granted"]["autoGainControl"] is False and run["granted"]["echoCancellation"] is False
    cpu = run["browser_cpu"]
    assert cpu["streaming"]["percent_of_one_core"] > 0 and cpu["idle"]["percent_of_one_core"] >= 0
    assert "renderer" in cpu["streaming"]["by_process"]
