"""Per-stage latency per backend, and per-utterance latency of emostream against the alternatives.

Stages alone (one after another, warm): SEC on every backend that runs here, ASR, text encoder,
fusion; median / p95 / p99 and real-time factor (stage time / audio time).

Whole utterances, the moment the VAD has closed them, through ``Pipeline.recognize`` and
``Pipeline.publish_final`` (the code ``listen`` runs, publishing on a real ZeroMQ socket):
emostream with SEC || (ASR -> text), the same with the branches sequential, and the baseline a user
would otherwise pick — RealtimeSTT-style, transcribe the whole utterance after VAD stop, then
classify the text alone — publishing the same way. The three are interleaved per utterance so drift hits all alike.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from emostream.benchmarks.runner import ratio, repeat_ms, summarize
from emostream.benchmarks.utterances import BenchUtterance

log = logging.getLogger(__name__)


def sec_backends(recognizer, names: list[str], threads: int) -> dict:
    from emostream.engine.backends import BackendUnavailable, make_sec_backend

    out, skipped = {}, {}
    for name in names:
        try:
            runner = make_sec_backend(name, recognizer.sec_model, threads=threads)
        except BackendUnavailable as exc:
            skipped[name] = str(exc)
            continue
        except Exception as exc:  # a build that fails here is a finding, not a crash of the whole bench
            skipped[name] = f"failed: {type(exc).__name__}: {exc}"
            continue
        out[runner.name] = runner  # "torch" runs on CUDA when there is a GPU: then it is named torch-cuda
    return out, skipped


def stage_latency(recognizer, utterances: list[BenchUtterance], backends: list[str], threads: int,
                  warmup: int, repeats: int, progress=None) -> dict:
    from emostream.engine.fusion.searched import CellFileError, load_cell
    from emostream.engine.recognizer import SECOutput, cell_inputs

    runners, skipped = sec_backends(recognizer, backends, threads)
    try:  # the shipped searched cell, timed beside the default fusion (issue 6: < 10 ms per utterance)
        cell = load_cell()[0]
    except CellFileError as exc:
        cell = None
        log.warning("no searched fusion cell to time: %s", exc)
    samples: dict[str, list[float]] = {f"sec[{n}]": [] for n in runners}
    samples.update(asr=[], text=[], fusion=[], **({"fusion[searched]": []} if cell is not None else {}))
    rtf: dict[str, list[float]] = {k: [] for k in samples}
    for utt in utterances:
        audio_ms = utt.seconds * 1e3
        for name, runner in runners.items():
            times = repeat_ms(lambda: runner(utt.samples), warmup, repeats)
            samples[f"sec[{name}]"] += times
            rtf[f"sec[{name}]"] += [t / audio_ms for t in times]
        asr_times = repeat_ms(lambda: recognizer.transcribe(utt.samples), warmup, repeats)
        transcript = recognizer.transcribe(utt.samples)
        text_times = repeat_ms(lambda: recognizer.text(transcript.text), warmup, repeats)
        sec, tec = recognizer.sec(utt.samples), recognizer.text(transcript.text)
        fusion_times = repeat_ms(lambda: recognizer.fuse(sec, tec, transcript.confidence), warmup, repeats)
        timed = [("asr", asr_times), ("text", text_times), ("fusion", fusion_times)]
        if cell is not None:
            with torch.inference_mode():
                emb, logits, frames, mask = recognizer.sec_model.with_frames(torch.from_numpy(utt.samples)[None])
            inputs = cell_inputs(SECOutput(emb[0].numpy(), logits[0].numpy(), frames[0].numpy(), mask[0].numpy()),
                                 tec, transcript.confidence)

            def run_cell():
                with torch.inference_mode():
                    cell(*inputs)
            timed.append(("fusion[searched]", repeat_ms(run_cell, warmup, repeats)))
        for key, times in timed:
            samples[key] += times
            rtf[key] += [t / audio_ms for t in times]
        if progress:
            progress()
    result = {"stages_ms": {k: summarize(v) for k, v in samples.items()},
              "real_time_factor": {k: round(float(np.median(v)), 4) for k, v in rtf.items()},
              "sec_backends_skipped": skipped, "raw_ms": samples}
    # like against like: CPU against torch on CPU, GPU backends against torch on CUDA
    pairs = {"onnxruntime_over_torch": ("onnxruntime", "torch"),
             "onnxruntime_cuda_over_torch_cuda": ("onnxruntime-cuda", "torch-cuda"),
             "tensorrt_over_torch_cuda": ("tensorrt", "torch-cuda")}
    for key, (a, b) in pairs.items():
        if f"sec[{a}]" in samples and f"sec[{b}]" in samples:
            result[key] = ratio(result["stages_ms"][f"sec[{a}]"], result["stages_ms"][f"sec[{b}]"],
                                ("median", "p95", "p99"))
    return result


class _Discard:
    def emit(self, topic, message):
        pass

    def close(self):
        pass


def baseline_process(recognizer, utterance, publisher) -> dict:
    """RealtimeSTT-style: after VAD stop, transcribe the whole utterance with faster-whisper's 30 s
    window (what RealtimeSTT does), then text-only emotion."""
    t_asr = time.perf_counter()
    transcript = recognizer.transcribe(utterance.samples)
    t_text = time.perf_counter()
    tec = recognizer.text(transcript.text)
    probs = torch.softmax(torch.from_numpy(tec.logits), -1).numpy()
    t_done = time.perf_counter()
    message = {"stream_id": utterance.stream_id, "seq": utterance.seq, "transcript": transcript.text,
               "probs": probs.round(5).tolist(),
               "timings_ms": {"asr": (t_text - t_asr) * 1e3, "text": (t_done - t_text) * 1e3}}
    message["timings_ms"]["vad_close_to_publish"] = (time.perf_counter() - utterance.closed_perf) * 1e3
    publisher.emit("baseline." + utterance.stream_id, json.loads(json.dumps(message)))
    return message


def utterance_latency(recognizer, utterances: list[BenchUtterance], endpoint: str, warmup: int, repeats: int,
                      progress=None) -> dict:
    from emostream.sinks.publisher import Publisher
    from emostream.streaming.frames import Utterance
    from emostream.streaming.pipeline import Pipeline, PipelineConfig

    class _Ended:
        stream_id, description, counters = "bench", "benchmark utterances", {}

        def chunks(self, stop):
            return iter(())

        def close(self):
            pass

    publisher = Publisher(endpoint)
    full_window = recognizer.with_asr_context("full")
    modes = {"emostream": Pipeline(recognizer, [_Ended()], [_Discard()], PipelineConfig(), publisher=publisher),
             "sequential": Pipeline(recognizer, [_Ended()], [_Discard()],
                                    PipelineConfig(concurrent_branches=False), publisher=publisher)}
    latency: dict[str, list[float]] = {"emostream": [], "sequential": [], "baseline": []}
    stage_sums: dict[str, dict[str, list[float]]] = {"emostream": {}, "sequential": {}}
    seq = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sec") as pool:
        for utt in utterances:
            for rep in range(warmup + repeats):
                for mode in ("emostream", "sequential", "baseline"):
                    seq += 1
                    u = Utterance("bench", seq, 0.0, utt.seconds, utt.samples, time.time(), time.perf_counter())
                    if mode == "baseline":
                        value = baseline_process(full_window, u, publisher)["timings_ms"]["vad_close_to_publish"]
                    else:
                        message = modes[mode].publish_final(u, modes[mode].recognize(u, pool))
                        value = message["timings_ms"]["vad_close_to_publish"]
                        if rep >= warmup:
                            for k, v in message["timings_ms"].items():
                                stage_sums[mode].setdefault(k, []).append(v)
                    if rep >= warmup:
                        latency[mode].append(value)
            if progress:
                progress()
    publisher.close()
    summary = {mode: summarize(v) for mode, v in latency.items()}
    overlap = stage_sums["emostream"]
    return {
        "vad_close_to_publish_ms": summary,
        "emostream_over_baseline": ratio(summary["emostream"], summary["baseline"], ("median", "p95", "p99")),
        "emostream_over_sequential": ratio(summary["emostream"], summary["sequential"], ("median", "p95", "p99")),
        "stages_in_pipeline_ms": {mode: {k: summarize(v) for k, v in d.items()} for mode, d in stage_sums.items()},
        "sec_asr_overlap_share_of_sec": round(sum(overlap["sec_asr_overlap"]) / sum(overlap["sec"]), 4),
        "raw_ms": latency,
    }
