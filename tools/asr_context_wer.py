"""WER, latency and fall-back rate of the two ASR contexts (full 30 s window vs real length).

    python tools/asr_context_wer.py [--out asr_context.json]   # needs ../shared/data; ~5 min on 2 cores

Sets: every 10th RAVDESS clip (its sentence is known from the file name) and 121 MELD test lines
spoken by varied espeak-ng voices, each trimmed to the segmenter's speech span as `classify` does.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import jiwer
import numpy as np

from emostream.engine.asr import CONTEXTS, ASRConfig, SpeechRecognizer
from emostream.engine.training.corpora import ravdess_clips
from emostream.engine.training.union import ravdess_waveforms, spoken_meld, synthesize
from emostream.streaming.segmenter import trim_to_speech

SENTENCES = {1: "kids are talking by the door", 2: "dogs are sitting by the door"}


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="asr_context.json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    clips = ravdess_clips()[::10]
    lines = spoken_meld("test", 120, 5)
    sets = {"ravdess": ([trim_to_speech(w)[0] for w in ravdess_waveforms(clips)], [SENTENCES[c.statement] for c in clips]),
            "espeak": ([trim_to_speech(w)[0] for w in synthesize(lines)], [words(i.line.text) for i in lines])}
    out = {}
    for context in CONTEXTS:
        asr = SpeechRecognizer(ASRConfig(context=context, cpu_threads=args.threads))
        for name, (waves, refs) in sets.items():
            hyps, times, used = [], [], []
            for w in waves:
                t = time.perf_counter()
                r = asr.transcribe(w)
                times.append(time.perf_counter() - t)
                hyps.append(words(r.text))
                used.append(r.context)
            keep = [i for i, ref in enumerate(refs) if ref]
            out[f"{context} {name}"] = {
                "n": len(waves), "wer": round(jiwer.wer([refs[i] for i in keep], [hyps[i] for i in keep]), 3),
                "median_ms": round(1000 * float(np.median(times))), "p95_ms": round(1000 * float(np.percentile(times, 95))),
                "fell_back": round(float(np.mean([u == "real->full" for u in used])), 3)}
            print(context, name, out[f"{context} {name}"], flush=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
