"""Study: what the browser's voice processing (echo cancellation, noise suppression, automatic gain
control) does to the recognised emotion, on the same recordings.

RAVDESS clips of four actors (3 and 13 male, 8 and 18 female, one from each of four speaker folds;
``../shared`` holds actors 1-20 only, and the shipped bundle's final fit saw all of them, so absolute UA
is optimistic: the on/off difference on the same clips is what is measured) are joined into one recording with pauses, written as a 16-bit WAV and spoken into the page in Chromium
(its fake microphone) twice: with the three constraints off (the page's default) and on (the
browser's default). ``serve``'s pipeline runs in this process on the shipped models. A third row
runs the same recording through ``listen``'s pipeline with no browser (as fast as possible).

Each clip's prediction is its longest final (a clip cut in two keeps its longer half); a clip
without a final counts as wrong. Reported: UA, WA, WER of the transcripts, mean confidence, the
level the server received, clips without a final.

    python experiments/browser_processing_study.py --out runs/browser_processing --per-class 3
    python experiments/browser_processing_study.py --out runs/browser_processing_10db --snr 10

``--snr``: the recording under continuous office noise (the noise bank's held-out ``test`` part, looped
over pauses too, as a room is), at that SNR against the speech frames: where noise suppression acts.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from emostream.benchmarks.live import PAUSE_S, RATE, recording
from emostream.benchmarks.page import FRAME, frame_lag, stream_through_page, unavailable
from emostream.benchmarks.utterances import BenchUtterance
from emostream.engine.training.corpora import RAVDESS_STATEMENTS, ravdess_clips
from emostream.engine.training.metrics import scores, wer_words
from emostream.labels import LABEL_INDEX, LABELS

log = logging.getLogger(__name__)
ACTORS = (3, 8, 13, 18)
CONDITIONS = {"processing off (page default)": "ec=0&ns=0&agc=0",
              "processing on (browser default)": "ec=1&ns=1&agc=1"}


def held_out_clips(per_class: int):
    """``per_class`` clips per actor and label, spread over intensities, statements and repetitions."""
    chosen = []
    for actor in ACTORS:
        for label in LABELS:
            mine = [c for c in ravdess_clips() if c.actor == actor and c.label == label]
            if mine:
                step = len(mine) / per_class
                chosen += [mine[int(i * step)] for i in range(min(per_class, len(mine)))]
    return chosen


def predictions(finals: list[dict], regions, lag_samples: int) -> list[dict | None]:
    out = []
    for start, end, _, _ in regions:
        mine = [m for m in finals if start <= m["utterance"]["end_s"] * RATE + lag_samples < end]
        out.append(max(mine, key=lambda m: m["utterance"]["duration_s"]) if mine else None)
    return out


def score(clips, predicted: list[dict | None]) -> dict:
    import jiwer

    y = np.array([c.label_index for c in clips])
    p = np.array([LABEL_INDEX[m["label"]] if m else -1 for m in predicted])
    heard = [m for m in predicted if m]
    said = [wer_words(RAVDESS_STATEMENTS[c.statement]) for c, m in zip(clips, predicted) if m]
    return {**{k: round(v, 4) for k, v in scores(y, p).items()},
            "without_final": sum(m is None for m in predicted),
            "wer": round(jiwer.wer(said, [wer_words(m["transcript"]) or "-" for m in heard]), 4) if heard else None,
            "mean_confidence": round(float(np.mean([m["confidence"] for m in heard])), 4) if heard else None}


def speech_level_dbfs(frame_rms: np.ndarray) -> float:
    """RMS level of the 20 ms frames louder than -45 dBFS (what AGC changes)."""
    loud = frame_rms[frame_rms > 10 ** (-45 / 20)]
    return round(float(20 * np.log10(np.sqrt(np.mean(loud ** 2)))), 1)


def without_browser(recognizer, wav: Path) -> list[dict]:
    from emostream.streaming.pipeline import Pipeline, PipelineConfig
    from emostream.streaming.sources import FileSource

    class Collect:
        messages: list[dict] = []

        def emit(self, topic, message):
            self.messages.append(message)

        def close(self):
            pass

    sink = Collect()
    Pipeline(recognizer, [FileSource(wav, "study", realtime=False)], [sink], PipelineConfig()).run()
    return [m for m in sink.messages if m["type"] == "emotion"]


def in_room_noise(audio: np.ndarray, snr_db: float, cache: Path) -> np.ndarray:
    from emostream.engine.training.augment import NoiseBank

    bank = NoiseBank(cache).build()
    office = np.concatenate([sf.read(p, dtype="float32")[0] for p in bank.paths("office", "test")])
    office = np.resize(office, len(audio))
    frames = np.sqrt(np.mean(audio[:len(audio) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64) ** 2, axis=1))
    speech_rms = np.sqrt(np.mean(frames[frames > 10 ** (-45 / 20)] ** 2))
    gain = speech_rms / (np.sqrt(np.mean(office.astype(np.float64) ** 2)) * 10 ** (snr_db / 20))
    mixed = audio + gain * office
    return (mixed / max(1.0, float(np.abs(mixed).max()) / 0.99)).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/browser_processing"))
    ap.add_argument("--per-class", type=int, default=3, help="clips per held-out actor and label")
    ap.add_argument("--snr", type=float, default=None, help="add continuous office noise at this SNR (dB)")
    ap.add_argument("--noise-cache", type=Path, default=Path(".cache/noisebank"),
                    help="where the noise bank is (built there when missing)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    why = unavailable()
    if why:
        raise SystemExit(why)
    from playwright.sync_api import sync_playwright

    from emostream.engine.asr import ASRConfig
    from emostream.engine.recognizer import Recognizer
    from emostream.streaming.audio import load_audio
    from emostream.streaming.pipeline import PipelineConfig
    from emostream.web.gateway import GatewayConfig
    from emostream.web.local import running

    clips = held_out_clips(args.per_class)
    audio, regions = recording([BenchUtterance(c.path.stem, load_audio(c.path)) for c in clips])
    if args.snr is not None:
        audio = in_room_noise(audio, args.snr, args.noise_cache)
    print(f"{len(clips)} clips of actors {ACTORS}, {len(audio) / RATE / 60:.1f} min of audio per condition "
          f"(pauses {PAUSE_S} s)", flush=True)
    recognizer = Recognizer(asr=ASRConfig(cpu_threads=2), torch_threads=1)
    recognizer.warm_up()
    rows, started, per_clip = {}, time.monotonic(), {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        wav = Path(tmp) / "clips.wav"
        sf.write(wav, audio, RATE, subtype="PCM_16")
        name = "no browser (listen's pipeline, file)"
        per_clip[name] = predictions(without_browser(recognizer, wav), regions, 0)
        rows[name] = score(clips, per_clip[name])
        print(rows, flush=True)
        for name, query in CONDITIONS.items():
            with running(recognizer, GatewayConfig(port=0), PipelineConfig(role="serve")) as server:
                run = stream_through_page(playwright, server.url(), wav, len(audio) / RATE, query=query)
            lag = frame_lag(audio, run.sent_rms)
            per_clip[name] = predictions(run.finals, regions, lag * FRAME)
            rows[name] = {**score(clips, per_clip[name]),
                          "granted": {k: run.granted.get(k) for k in ("echoCancellation", "noiseSuppression",
                                                                      "autoGainControl")},
                          "speech_level_dbfs": speech_level_dbfs(run.sent_rms),
                          "lost_lead_ms": lag * 20}
            print(name, rows[name], flush=True)
    rows["no browser (listen's pipeline, file)"]["speech_level_dbfs"] = speech_level_dbfs(
        np.sqrt(np.mean(audio[:len(audio) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64) ** 2, axis=1)))
    args.out.mkdir(parents=True, exist_ok=True)
    off, on = (per_clip[k] for k in CONDITIONS)
    both = [(a, b) for a, b in zip(off, on) if a and b]
    rows["on vs off, same clips"] = {
        "label_changed": sum(a["label"] != b["label"] for a, b in both), "compared": len(both),
        "mean_abs_confidence_change": round(float(np.mean([abs(a["confidence"] - b["confidence"]) for a, b in both])), 4),
        "mean_total_variation_of_probs": round(float(np.mean([0.5 * sum(abs(a["probs"][k] - b["probs"][k]) for k in LABELS)
                                                               for a, b in both])), 4)}
    result = {"clips": [c.path.name for c in clips], "snr_db": args.snr, "rows": rows,
              "predictions": {name: [m and {k: m[k] for k in ("label", "confidence", "probs", "transcript")} for m in ms]
                              for name, ms in per_clip.items()}, "minutes": round((time.monotonic() - started) / 60, 1)}
    (args.out / "browser_processing.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| condition | UA | WA | WER | mean confidence | speech level dBFS | clips without a final |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        if "ua" not in r:
            print(f"{name}: {r}")
            continue
        print(f"| {name} | {r['ua']:.3f} | {r['wa']:.3f} | {r['wer']} | {r['mean_confidence']} | "
              f"{r['speech_level_dbfs']} | {r['without_final']} |")
    recognizer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
