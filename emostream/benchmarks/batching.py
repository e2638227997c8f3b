"""Throughput of each stage against batch size: the bench utterances (trimmed to speech, as the
segmenter cuts them) recognized B at a time, per stage and whole (``Recognizer.recognize_batch``).

ASR decodes a batch in one CTranslate2 call (utterances under 7.44 s share the 10 s window), the
words branch is one encoder call; SEC runs the batch's utterances one by one on its helper thread
(its statistics pool over each utterance's own frames), beside ASR. Reported per batch size:
the batch's time (the latency a batch costs each of its utterances) and utterances per second.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from emostream.benchmarks.runner import repeat_ms

BATCH_SIZES = (1, 2, 4, 8, 16)


def stage_throughput(recognizer, utts, batch_sizes=BATCH_SIZES, warmup: int = 1, repeats: int = 3,
                     progress=None) -> dict:
    from emostream.streaming.segmenter import trim_to_speech

    waves = [trim_to_speech(u.samples)[0] for u in utts]
    texts = [recognizer.transcribe(w).text for w in waves]
    rows = {}
    with ThreadPoolExecutor(1, thread_name_prefix="sec") as pool:
        for b in batch_sizes:
            batch = [waves[i % len(waves)] for i in range(b)]
            words = [texts[i % len(texts)] for i in range(b)]
            timed = {
                "asr": repeat_ms(lambda: recognizer.asr.transcribe_batch(batch), warmup, repeats),
                "text": repeat_ms(lambda: recognizer.text_batch(words), warmup, repeats),
                "sec": repeat_ms(lambda: [recognizer.sec(w) for w in batch], warmup, repeats),
                "whole": repeat_ms(lambda: recognizer.recognize_batch(batch, pool), warmup, repeats),
            }
            rows[b] = {stage: {"batch_ms": round(float(np.median(ms)), 1),
                               "utterances_per_s": round(b * 1000 / float(np.median(ms)), 2)}
                       for stage, ms in timed.items()}
            if progress:
                progress(b, rows[b])
    single = rows[batch_sizes[0]]
    for b, row in rows.items():
        for stage, v in row.items():
            v["throughput_over_batch_1"] = round(v["utterances_per_s"] / single[stage]["utterances_per_s"], 3)
    return {"batch_sizes": list(batch_sizes), "stages": {str(b): r for b, r in rows.items()},
            "utterance_s": [round(len(w) / 16000, 2) for w in waves],
            "note": "whole = recognize_batch (SEC on its helper thread beside ASR -> text, fusion); "
                    "batch_ms is the latency every utterance of that batch waits"}


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = result["batch_sizes"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for stage in ("asr", "text", "sec", "whole"):
        a.plot(sizes, [result["stages"][str(s)][stage]["utterances_per_s"] for s in sizes], marker="o", label=stage)
        b.plot(sizes, [result["stages"][str(s)][stage]["batch_ms"] for s in sizes], marker="o", label=stage)
    a.set_title("throughput per stage")
    a.set_ylabel("utterances / s (log)")
    a.set_yscale("log")
    b.set_title("time of one batch (each of its utterances waits this)")
    b.set_ylabel("ms")
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("batch size")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
