"""The two ASR contexts (full 30 s window vs real length) on speech with known words: WER, latency,
how often the short window was not trusted (before the fall-back), loops dropped, and the fused
emotion UA the shipped models reach with each path's transcripts. WER twice: on lower-cased words
with punctuation removed, and after Whisper's English normalizer.

    python tools/asr_context_wer.py [--out asr_context.json]   # needs ../shared/data; ~15 min on 2 cores

Sets, each clip trimmed to the segmenter's speech span as ``classify`` does:
- ``ravdess``: every 10th RAVDESS clip (its sentence is known from the file name; the shipped
  fusion was trained on every actor, so its UA here is not held out);
- ``bench``: the 12 espeak-ng sentences ``emostream bench`` uses;
- ``espeak_meld``: the 600 MELD test lines in varied espeak-ng voices that training holds out;
- ``kokoro_meld``: the 299 held-out Kokoro MELD test lines (only when training cached them, or the
  ``tts`` extra can speak them).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jiwer
import numpy as np
from tqdm import tqdm

from emostream.engine.asr import CONTEXTS, ASRConfig
from emostream.engine.recognizer import Recognizer
from emostream.engine.training.corpora import ravdess_clips
from emostream.engine.training.metrics import scores, wer_words
from emostream.engine.training.pipeline import TrainConfig
from emostream.engine.training.union import (NEURAL_TEST_VOICES, neural_meld, ravdess_waveforms, spoken_meld,
                                             synthesize, synthesize_neural)
from emostream.streaming.segmenter import trim_to_speech





def normalized(text: str) -> str:
    """Whisper's English normalizer (numbers, contractions, "gonna" = "going to"; no spelling map):
    the usual WER protocol for Whisper, so a number written as digits is not an error."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})(text)


def reference_sets(kokoro: bool) -> dict[str, tuple[list[np.ndarray], list[str], list[int] | None]]:
    from emostream.benchmarks.utterances import SENTENCES as BENCH, bench_utterances

    cfg = TrainConfig()
    clips = ravdess_clips()[::10]
    meld = spoken_meld("test", cfg.union_test_lines, cfg.seed + 1)
    bench = bench_utterances(len(BENCH))
    sets = {
        "ravdess": (ravdess_waveforms(clips), [c.sentence for c in clips], [c.label_index for c in clips]),
        "bench": ([u.samples for u in bench], list(BENCH), None),
        "espeak_meld": (synthesize(meld), [s.line.text for s in meld], [s.line.label_index for s in meld]),
    }
    if kokoro:
        try:
            items = neural_meld("test", cfg.neural_lines, cfg.seed + 1, list(NEURAL_TEST_VOICES))
            waves = synthesize_neural(Path(cfg.cache), f"test{len(items)}", items)
            sets["kokoro_meld"] = (waves, [i.line.text for i in items], [i.line.label_index for i in items])
        except Exception as exc:  # no tts extra and no cached waveforms
            print(f"kokoro_meld skipped: {exc}", flush=True)
    return {k: ([trim_to_speech(w)[0] for w in waves], refs, labels) for k, (waves, refs, labels) in sets.items()}


def wer(refs: list[str], hyps: list[str], norm) -> float:
    pairs = [(norm(r), norm(h)) for r, h in zip(refs, hyps) if norm(r).strip()]
    return round(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="asr_context.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-kokoro", action="store_true", help="leave out the Kokoro set")
    args = parser.parse_args()
    sets = reference_sets(not args.no_kokoro)
    rec = Recognizer(asr=ASRConfig(cpu_threads=args.threads), torch_threads=args.threads)
    paths = {context: rec.asr.with_context(context) for context in CONTEXTS}
    assert set(paths) == set(CONTEXTS)
    out: dict = {"config": {"threads": args.threads, "real": {k: v for k, v in vars(paths["real"].config).items()}}}
    for name, (waves, refs, labels) in sets.items():
        sec = [rec.sec(w) for w in tqdm(waves, desc=f"SEC {name}", unit="clip", leave=False)]
        for context, asr in paths.items():
            texts, times, used, dropped, preds = [], [], [], 0, []
            for w, s in zip(tqdm(waves, desc=f"{context} {name}", unit="clip", leave=False), sec):
                t = time.perf_counter()
                r = asr.transcribe(w)
                times.append(time.perf_counter() - t)
                texts.append(r.text)
                used.append(r.context)
                dropped += r.runaway
                if labels is not None:
                    preds.append(int(np.argmax(rec.fuse(s, rec.text(r.text), r.confidence)[0])))
            row = {"n": len(waves), "wer": wer(refs, texts, wer_words), "wer_normalized": wer(refs, texts, normalized),
                   "median_ms": round(1000 * float(np.median(times))), "p95_ms": round(1000 * float(np.percentile(times, 95))),
                   "short_window_not_trusted": sum(u == "real->full" for u in used),
                   "loops_dropped": dropped}
            if labels is not None:
                row["fused_ua"] = round(scores(np.array(labels), np.array(preds))["ua"], 4)
            out[f"{context} {name}"] = row
            print(context, name, row, flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
