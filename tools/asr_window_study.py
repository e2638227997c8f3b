"""Why the real-length ASR window has a 10 s floor: runaways and WER of short-window variants.

    python tools/asr_window_study.py [--out asr_window_study.json] [VARIANT ...]   # ~15 min on 2 cores

Every variant decodes the same trimmed clips once through CTranslate2 (no fall-back), and counts
what the fall-back would have caught: maybe-no-speech (``nsp``), token cap hit (``cap``), and a
repeated phrase or high compression ratio (``rep``). ``wer_raw`` is the WER of those decodes as
they came out. Sets: every 10th RAVDESS clip and 121 MELD test lines in varied espeak-ng voices
(the sets of the first ``tools/asr_context_wer.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import ctranslate2
import jiwer
import numpy as np
from faster_whisper.transcribe import get_compression_ratio

from emostream.engine.asr import MAX_NEW_TOKENS, SAMPLE_RATE, ASRConfig, SpeechRecognizer, is_runaway
from emostream.engine.training.corpora import ravdess_clips
from emostream.engine.training.metrics import wer_words
from emostream.engine.training.union import ravdess_waveforms, spoken_meld, synthesize
from emostream.streaming.segmenter import trim_to_speech

VARIANTS = {
    "margin 1.28 s": {"margin": 1.28}, "margin 2.56 s": {}, "margin 5.12 s": {"margin": 5.12},
    "margin 8 s": {"margin": 8.0}, "window >= 10 s": {"floor": 10.0},
    "margin 2.56 s, beam 5": {"beam": 5}, "margin 2.56 s, no_repeat_ngram_size 4": {"no_repeat": 4},
    "margin 2.56 s, repetition_penalty 1.1": {"repetition_penalty": 1.1},
    "margin 2.56 s, timestamps": {"timestamps": True},
}




def decode(asr: SpeechRecognizer, wave: np.ndarray, margin: float = 2.56, floor: float = 0.0, beam: int = 1,
           no_repeat: int = 0, repetition_penalty: float = 1.0, timestamps: bool = False) -> tuple[str, str]:
    """One short-window decode: (text, why it would not be trusted or "")."""
    tok = asr._tokenizer
    pad = max(margin, floor - len(wave) / SAMPLE_RATE)
    audio = np.concatenate([wave, np.zeros(int(pad * SAMPLE_RATE), np.float32)])
    mel = np.ascontiguousarray(asr.model.feature_extractor(audio)[None, :, :-1], dtype=np.float32)
    cap = min(MAX_NEW_TOKENS, math.ceil(6.0 * len(wave) / SAMPLE_RATE) + 10)
    prompt = list(tok.sot_sequence) + ([] if timestamps else [tok.no_timestamps])
    r = asr.model.model.generate(
        ctranslate2.StorageView.from_array(mel), [prompt], beam_size=beam, max_length=2 * cap,
        suppress_blank=True, suppress_tokens=[-1], return_scores=True, return_no_speech_prob=True,
        no_repeat_ngram_size=no_repeat, repetition_penalty=repetition_penalty)[0]
    ids = r.sequences_ids[0]
    text = tok.decode([i for i in ids if i < tok.eot]).strip()
    if r.no_speech_prob > 0.6:
        return text, "nsp"
    if len(ids) >= cap:
        return text, "cap"
    if is_runaway(text, len(ids), cap, 2.4, get_compression_ratio):
        return text, "rep"
    return text, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help=f"default: all of {list(VARIANTS)}")
    parser.add_argument("--out", default="asr_window_study.json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    clips = ravdess_clips()[::10]
    lines = spoken_meld("test", 120, 5)
    sets = {"ravdess": ([trim_to_speech(w)[0] for w in ravdess_waveforms(clips)], [wer_words(c.sentence) for c in clips]),
            "espeak": ([trim_to_speech(w)[0] for w in synthesize(lines)], [wer_words(i.line.text) for i in lines])}
    asr = SpeechRecognizer(ASRConfig(cpu_threads=args.threads))
    out = {}
    for name in args.variants or list(VARIANTS):
        for set_name, (waves, refs) in sets.items():
            hyps, why, times = [], [], []
            for w in waves:
                t = time.perf_counter()
                text, reason = decode(asr, w, **VARIANTS[name])
                times.append(time.perf_counter() - t)
                hyps.append(wer_words(text))
                why.append(reason)
            keep = [i for i, r in enumerate(refs) if r]
            row = {"n": len(waves), "wer_raw": round(jiwer.wer([refs[i] for i in keep], [hyps[i] for i in keep]), 3),
                   **{k: why.count(k) for k in ("nsp", "cap", "rep")},
                   "median_ms": round(1000 * float(np.median(times))), "p95_ms": round(1000 * float(np.percentile(times, 95)))}
            out[f"{name} | {set_name}"] = row
            print(name, "|", set_name, row, flush=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
