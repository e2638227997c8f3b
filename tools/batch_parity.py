"""Check by hand: batches give what single calls give, on many real utterances.

Recognizes the Kokoro test lines that ``emostream train`` synthesises (``.cache/train/
kokoro_test299.npz``: MELD test lines in held-out Kokoro voices, conversation-like) and the bench's
utterances, trimmed to speech as the segmenter cuts them, once one by one and once in batches of
``--batch-size``, and reports how many transcripts and labels are identical, the WER between the
two sets of transcripts and the largest probability difference.

    python tools/batch_parity.py --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jiwer
import numpy as np

from emostream.benchmarks.utterances import bench_utterances
from emostream.engine.asr import ASRConfig
from emostream.engine.recognizer import Recognizer
from emostream.engine.training.metrics import wer_words
from emostream.streaming.segmenter import trim_to_speech


def kokoro_lines(path: Path) -> list[np.ndarray]:
    data = np.load(path)
    ends = np.cumsum(data["lengths"])
    return [data["samples"][e - n:e].astype(np.float32) for e, n in zip(ends, data["lengths"])]


def compare(recognizer: Recognizer, waves: list[np.ndarray], batch_size: int) -> dict:
    with ThreadPoolExecutor(1) as pool:
        t0 = time.perf_counter()
        alone = [recognizer.recognize_batch([w], pool)[0] for w in waves]
        t1 = time.perf_counter()
        batched = []
        for k in range(0, len(waves), batch_size):
            batched += recognizer.recognize_batch(waves[k:k + batch_size], pool)
        t2 = time.perf_counter()
    pairs = [(a, b) for a, b in zip(alone, batched) if a is not None and not isinstance(a, Exception)]
    same_text = sum(a.result.transcript == b.result.transcript for a, b in pairs)
    same_label = sum(a.result.label == b.result.label for a, b in pairs)
    said = [wer_words(a.result.transcript) or "-" for a, _ in pairs]
    heard = [wer_words(b.result.transcript) or "-" for _, b in pairs]
    max_dp = max(abs(a.result.probs[k] - b.result.probs[k]) for a, b in pairs for k in a.result.probs)
    return {"utterances": len(waves), "compared": len(pairs), "same_transcript": same_text, "same_label": same_label,
            "wer_batched_vs_alone": round(jiwer.wer(said, heard), 5), "max_probability_difference": float(max_dp),
            "seconds_alone": round(t1 - t0, 1), "seconds_batched": round(t2 - t1, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--kokoro", type=Path, default=Path(".cache/train/kokoro_test299.npz"))
    args = ap.parse_args()
    recognizer = Recognizer(asr=ASRConfig(cpu_threads=2), torch_threads=1)
    recognizer.warm_up()
    sets = {"bench utterances": [u.samples for u in bench_utterances(12, 8)]}
    if args.kokoro.is_file():
        sets["Kokoro test lines"] = kokoro_lines(args.kokoro)
    else:
        print(f"{args.kokoro} not found (made by `emostream train`): bench utterances only")
    report = {name: compare(recognizer, [trim_to_speech(w)[0] for w in waves], args.batch_size)
              for name, waves in sets.items()}
    print(json.dumps(report, indent=1))
    recognizer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
