"""One utterance in, one emotion out: SEC ‖ (ASR -> TEC), fusion, calibration, each timed.

This is the engine's public entry point: ``Recognizer.recognize`` is the one orchestration of the
branches, used by ``classify``, the live pipeline, cluster workers and the benchmarks. Models load
once; every method is safe to call from several threads (torch, CTranslate2 and ONNX Runtime
release the GIL), which is what lets SEC run on a helper thread while ASR decodes.
"""

from __future__ import annotations

import copy
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from emostream.engine.asr import ASRConfig, SpeechRecognizer, Transcript, bundled_asr_dir
from emostream.engine.bundle import Bundle
from emostream.engine.calibration import Calibrator, calibration_signals
from emostream.engine.fusion import FusionClassifier, FusionConfig
from emostream.engine.fusion.searched import BUNDLE_PARTS_READ, load_cell
from emostream.engine.sec import SECModel, whisper_sec
from emostream.engine.text import TextEncoder, TextHead
from emostream.labels import LABELS
from emostream.streaming.audio import SAMPLE_RATE, AudioError, validate_waveform
from emostream.streaming.segmenter import trim_to_speech

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmotionResult:
    label: str
    confidence: float
    probs: dict[str, float]
    valence: float
    arousal: float
    transcript: str
    asr_confidence: float
    timings_ms: dict[str, float]
    model_ids: dict[str, str] = field(default_factory=dict)
    speech_s: tuple[float, float] | None = None  # classify: the part of the clip judged as speech
    words_va: tuple[float, float] | None = None  # valence, arousal from the words alone (None: no words)


@dataclass(frozen=True)
class SECOutput:
    embedding: np.ndarray
    logits: np.ndarray
    frames: np.ndarray | None = None  # (T, d) last encoder layer: only the searched fusion reads it
    frame_mask: np.ndarray | None = None  # (T,) bool, speech frames


@dataclass(frozen=True)
class TECOutput:
    embedding: np.ndarray
    logits: np.ndarray
    has_text: bool
    tokens: np.ndarray | None = None  # (T, d) token states (T = 0 without a transcript)
    va: tuple[float, float] | None = None  # valence, arousal from the words (bundles with a text_va head)


@dataclass(frozen=True)
class Recognition:
    """An EmotionResult with how it was made: the ASR context that produced the words and the stage
    times (ms): sec, asr, text, fusion, branches (start to both done), sec_asr_overlap."""

    result: EmotionResult
    asr_context: str
    timings_ms: dict[str, float]
    started: float  # perf_counter when recognition began
    batch: int = 1  # how many utterances were recognised together (stage times are the batch's)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def cell_inputs(sec: SECOutput, tec: TECOutput, asr_confidence: float) -> tuple[torch.Tensor, ...]:
    """One utterance as the searched fusion cell's batch of one (its ONNX inputs, in order)."""
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))[None]  # noqa: E731
    tokens = tec.tokens if tec.has_text else np.zeros((0, len(tec.embedding)), np.float32)
    return (t(sec.frames), torch.from_numpy(np.asarray(sec.frame_mask, bool))[None], t(tokens),
            torch.ones(1, len(tokens), dtype=torch.bool), t([asr_confidence if tec.has_text else 0.0])[0],
            t(sec.logits), t(tec.logits))


def load_sec(bundle: Bundle, asr_dir: str | Path | None = None) -> SECModel:
    """The Whisper SEC: frozen lower layers from the bundled tiny.en, our fine-tuned top + head.
    ``asr_dir``: another copy of the same tiny.en weights (only its ``encoder/`` variables are read)."""
    sec = bundle.manifest["sec"]
    states = tuple(sec["states"]) if "states" in sec else None
    model = whisper_sec(str(asr_dir or bundled_asr_dir()), sec.get("head", "pooling"), states, noise_gate=sec.get("noise_gate", False))
    missing, unexpected = model.load_state_dict(bundle.part("sec"), strict=False)
    if unexpected:
        raise RuntimeError(f"SEC weights in the bundle do not fit the model: {unexpected[:3]}")
    needed = [k for k in missing if k.startswith("head.")]
    if needed:
        raise RuntimeError(f"SEC head weights missing from the bundle: {needed[:3]}")
    return model.eval()


class Recognizer:
    def __init__(self, bundle: Bundle | str | Path | None = None, asr: ASRConfig | None = None,
                 torch_threads: int | None = None, sec_backend: str = "auto",
                 cache_dir: str | Path | None = None, fusion: str | Path = "fixed") -> None:
        """``sec_backend``: auto | tensorrt | onnxruntime-cuda | onnxruntime | torch (see engine/backends).
        ``fusion``: "fixed" (the default fusion in the bundle), "searched" (the shipped searched
        cell) or the path of a cell written by ``emostream search``."""
        from emostream.engine.backends import make_sec_backend

        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        if torch_threads:
            torch.set_num_threads(torch_threads)
        m = self.bundle.manifest
        self.sec_model = load_sec(self.bundle)
        self.cell = None
        if str(fusion) != "fixed":
            self.cell, cell_manifest = load_cell(None if str(fusion) == "searched" else fusion)
            if sec_backend not in ("auto", "torch"):
                raise ValueError(f"the searched fusion reads the SEC frame sequence, which only the torch backend "
                                 f"returns; use --sec-backend torch or auto (got {sec_backend})")
            sec_backend = "torch"
            log.info("searched fusion cell %s: SEC on torch (the cell reads its frames)", cell_manifest["genotype"])
        self.sec_backend = make_sec_backend(sec_backend, self.sec_model, threads=torch.get_num_threads(),
                                            cache_dir=cache_dir)
        self.asr = SpeechRecognizer(asr)
        self.text_encoder = TextEncoder()
        self.text_encoder.load_tuned(self.bundle.part("text"))
        self.text_head = TextHead(self.text_encoder.dim)
        self.text_head.load_state_dict(self.bundle.part("text_head"))
        self.text_head.eval()
        va = self.bundle.part("text_va")
        self.text_va = (va["weight"].numpy(), va["bias"].numpy()) if va else None
        self.fusion = FusionClassifier(FusionConfig(**m["fusion"]["config"]))
        self.fusion.load_state_dict(self.bundle.part("fusion"))
        self.fusion.eval()
        # each fusion brings the calibrator fitted on its own out-of-fold outputs (a cell from before
        # calibration has none: its probabilities pass unchanged)
        self.calibrator = Calibrator.from_manifest(m.get("calibration", {}).get("fused") if self.cell is None
                                                   else cell_manifest.get("calibration"))
        trained_with = cell_manifest.get("bundle", {}).get("digest") if self.cell is not None else None
        if trained_with is not None and trained_with != self.bundle.digest(*BUNDLE_PARTS_READ):
            log.warning("the searched fusion cell was trained against another model bundle (%s, this one is %s): "
                        "its results are not validated with these branches; rerun `emostream search`",
                        cell_manifest["bundle"].get("model_id"), self.bundle.model_id)
        self.model_ids = {"emostream": self.bundle.model_id, "asr": self.asr.model_id,
                          "sec": m["sec"]["model_id"], "text": m["text"]["model_id"],
                          "sec_backend": self.sec_backend.name,
                          "fusion": "fixed" if self.cell is None else "searched-cell"}

    def with_asr_context(self, context: str) -> Recognizer:
        """The same loaded models with the ASR decoding another context ("full" or "real")."""
        other = copy.copy(self)
        other.asr = self.asr.with_context(context)
        return other

    def warm_up(self) -> None:
        """One pass over a second of faint noise so the first real utterance is not the slow one."""
        wave = (0.01 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
        self.sec(wave)
        self.text(self.transcribe(wave).text or "warm up")

    def close(self) -> None:
        """Free the ASR model now, on this thread. Left to interpreter shutdown, CTranslate2's
        worker threads can be torn down out of order and abort the process ("terminate called")."""
        self.asr.close()

    # --- stages (each usable alone) -------------------------------------------------------------
    def sec(self, waveform: np.ndarray) -> SECOutput:
        if self.cell is not None:
            with torch.inference_mode():
                emb, logits, frames, mask = self.sec_model.with_frames(torch.from_numpy(
                    np.asarray(waveform, np.float32))[None])
            return SECOutput(emb[0].numpy(), logits[0].numpy(), frames[0].numpy(), mask[0].numpy())
        emb, logits = self.sec_backend(waveform)
        return SECOutput(np.asarray(emb, np.float32), np.asarray(logits, np.float32))

    def transcribe(self, waveform: np.ndarray, partial: bool = False) -> Transcript | None:
        """``partial``: audio of an utterance still being spoken; None when that decode is not trusted."""
        return self.asr.transcribe_partial(waveform) if partial else self.asr.transcribe(waveform)

    def text(self, transcript: str) -> TECOutput:
        return self.text_batch([transcript])[0]

    def text_batch(self, transcripts: list[str]) -> list[TECOutput]:
        """The words branch on several transcripts in one encoder call (padding is masked out of
        the attention and the pooling, and each item keeps only its own token states)."""
        empty = TECOutput(np.zeros(self.text_encoder.dim, np.float32), np.zeros(len(LABELS), np.float32), False,
                          np.zeros((0, self.text_encoder.dim), np.float32))
        said = [i for i, t in enumerate(transcripts) if t.strip()]
        out = [empty] * len(transcripts)
        if not said:
            return out
        with torch.inference_mode():
            batch = self.text_encoder.tokenize([transcripts[i] for i in said])
            tokens, emb = self.text_encoder(batch)
            logits = self.text_head(emb).numpy()
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        emb = emb.numpy()
        for k, i in enumerate(said):
            va = None
            if self.text_va is not None:
                v, a = np.clip(self.text_va[0] @ emb[k] + self.text_va[1], -1.0, 1.0)
                va = (float(v), float(a))
            out[i] = TECOutput(emb[k], logits[k], True, tokens[k, :lengths[k]].numpy(), va)
        return out

    def fuse(self, sec: SECOutput, tec: TECOutput, asr_confidence: float) -> tuple[np.ndarray, float, float]:
        t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))[None]  # noqa: E731
        with torch.inference_mode():
            if self.cell is not None:
                logits, va = self.cell(*cell_inputs(sec, tec, asr_confidence))
            else:
                logits, va = self.fusion(t(sec.embedding), t(sec.logits), t(tec.embedding), t(tec.logits),
                                         t([asr_confidence if tec.has_text else 0.0]), t([float(tec.has_text)]))
        signals = calibration_signals(sec.logits, tec.logits, [float(tec.has_text)],
                                      [asr_confidence if tec.has_text else 0.0])
        probs = self.calibrator(logits[0].numpy(), signals)[0].astype(np.float32)
        return probs, float(va[0, 0]), float(va[0, 1])

    # --- whole utterance ------------------------------------------------------------------------
    def recognize(self, waveform: np.ndarray, sec_pool: Executor | None = None,
                  partial: bool = False) -> Recognition | None:
        """SEC ‖ (ASR -> text), then fusion and calibration. SEC runs on ``sec_pool`` while ASR
        decodes on this thread; without a pool, one after the other. ``partial``: audio of an
        utterance still being spoken; None when its short-window decode is not trusted (that
        partial is skipped). Raises AudioError for unusable audio."""
        done = self.recognize_batch([waveform], sec_pool, [partial])[0]
        if isinstance(done, AudioError):
            raise done
        return done

    def recognize_batch(self, waveforms: list[np.ndarray], sec_pool: Executor | None = None,
                        partial: list[bool] | None = None) -> list[Recognition | AudioError | None]:
        """``recognize`` on several utterances (of any streams) at once: ASR decodes them in
        CTranslate2 batches and the words branch runs as one batch, while SEC takes them one by one
        on ``sec_pool`` (its statistics pool over each utterance's own frames). Each slot holds what
        ``recognize`` would return for that utterance, or the AudioError it would raise: one
        unusable utterance costs the others nothing. Stage times are those of the batch, except
        ``sec`` (the utterance's own)."""
        t_start = time.perf_counter()
        partial = list(partial) if partial is not None else [False] * len(waveforms)
        out: list[Recognition | AudioError | None] = [None] * len(waveforms)
        usable: list[int] = []
        for i, w in enumerate(waveforms):
            try:
                validate_waveform(w)
                usable.append(i)
            except AudioError as exc:
                out[i] = exc
        if not usable:
            return out
        waves = [waveforms[i] for i in usable]

        def sec_branch() -> list[tuple[SECOutput, tuple[float, float]]]:
            done = []
            for w in waves:
                t0 = time.perf_counter()
                done.append((self.sec(w), (t0, time.perf_counter())))
            return done

        if sec_pool is None:
            sec_done = sec_branch()
            sec_results = lambda: sec_done  # noqa: E731
        else:
            sec_results = sec_pool.submit(sec_branch).result
        t_asr0 = time.perf_counter()
        try:
            transcripts = self.asr.transcribe_batch(waves, [partial[i] for i in usable])
            t_asr1 = time.perf_counter()
            tecs = self.text_batch([t.text if t is not None else "" for t in transcripts])
            t_text = time.perf_counter()
        finally:  # wait for SEC even if ASR failed: it runs on the caller's pool
            secs = sec_results()
        for i, transcript, tec, (sec, sec_span) in zip(usable, transcripts, tecs, secs):
            if transcript is None:
                continue  # an untrusted partial: skipped
            t_fuse = time.perf_counter()
            branches_end = max(t_text, sec_span[1])
            probs, valence, arousal = self.fuse(sec, tec, transcript.confidence)
            timings = {"sec": (sec_span[1] - sec_span[0]) * 1e3, "asr": (t_asr1 - t_asr0) * 1e3,
                       "text": (t_text - t_asr1) * 1e3, "fusion": (time.perf_counter() - t_fuse) * 1e3,
                       "branches": (branches_end - t_start) * 1e3,
                       "sec_asr_overlap": _overlap(sec_span, (t_asr0, t_asr1)) * 1e3}
            out[i] = Recognition(self.result(probs, valence, arousal, transcript, words_va=tec.va),
                                 transcript.context, timings, t_start, batch=len(waves))
        return out

    def classify(self, waveform: np.ndarray) -> EmotionResult:
        """16 kHz mono float32 -> EmotionResult. Raises AudioError for unusable audio.

        The clip is one utterance: it is first trimmed to the span the live segmenter would cut
        (same VAD, pre-roll and end silence), so room tone around the speech is judged neither
        by SEC nor by ASR, exactly as in ``listen``."""
        waveform, span = trim_to_speech(validate_waveform(np.asarray(waveform, dtype=np.float32)))
        done = self.recognize(waveform)
        stages = {k: round(done.timings_ms[k], 2) for k in ("sec", "asr", "text", "fusion")}
        return replace(done.result, timings_ms=stages,
                       speech_s=(round(span[0] / SAMPLE_RATE, 3), round(span[1] / SAMPLE_RATE, 3)))

    def result(self, probs: np.ndarray, valence: float, arousal: float, transcript: Transcript,
               words_va: tuple[float, float] | None = None) -> EmotionResult:
        best = int(np.argmax(probs))
        return EmotionResult(
            label=LABELS[best], confidence=float(probs[best]),
            probs={name: float(p) for name, p in zip(LABELS, probs)},
            valence=valence, arousal=arousal, transcript=transcript.text,
            asr_confidence=transcript.confidence, timings_ms={}, model_ids=dict(self.model_ids),
            words_va=words_va,
        )
