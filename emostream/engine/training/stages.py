"""Training stages with on-disk results, so a rerun reuses what is already computed."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from emostream.engine.asr import SpeechRecognizer
from emostream.engine.text import TextEncoder, TextHead
from emostream.engine.training.tec_train import TECConfig, TextSet, train_tec
from emostream.engine.training.text_augment import asr_style
from emostream.engine.training.text_corpora import TEXT_CORPORA, TextLine, text_corpus
from emostream.engine.training.union import spoken_meld, synthesize, transcripts
from emostream.streaming.segmenter import trim_to_speech

log = logging.getLogger(__name__)

MELD_TRAIN_SPOKEN = 1500  # MELD train lines spoken by espeak-ng voices and transcribed by tiny.en for the TEC


def meld_transcript_lines(cache: Path, asr: SpeechRecognizer, n: int, seed: int) -> list[TextLine]:
    """What the shipped ASR writes for ``n`` MELD train lines spoken by drawn espeak-ng voices."""
    items = spoken_meld("train", n, seed)
    texts = transcripts(cache, f"meld_textrain{len(items)}_s{seed}_trimmed", asr,
                        lambda: [trim_to_speech(w)[0] for w in synthesize(items)], count=len(items))
    return [TextLine("meld-asr", "train", t.text, s.line.label) for t, s in zip(texts, items) if t.text.strip()]


def text_sets(seed: int) -> tuple[list[TextLine], dict[str, TextSet], dict[str, TextSet]]:
    """Training lines of the three corpora; validation = their dev splits as ASR would write them
    (seeded renderings); tests = their test splits the same way, plus MELD test as typed."""
    rng = np.random.default_rng([seed, 5])
    as_asr = lambda lines: TextSet([asr_style(l.text, rng) for l in lines],  # noqa: E731
                                   np.array([l.label_index for l in lines]))
    train = [l for c in TEXT_CORPORA for l in text_corpus(c, "train")]
    valid = {f"{c} dev (ASR style)": as_asr(text_corpus(c, "dev")) for c in TEXT_CORPORA}
    tests = {f"{c} test (ASR style)": as_asr(text_corpus(c, "test")) for c in TEXT_CORPORA}
    meld_test = text_corpus("meld", "test")
    tests["meld test (typed)"] = TextSet([l.text for l in meld_test], np.array([l.label_index for l in meld_test]))
    return train, valid, tests


def tec_stage(cache: Path, cfg: TECConfig, asr: SpeechRecognizer, spoken_valid: dict[str, TextSet]
              ) -> tuple[TextEncoder, TextHead, dict]:
    """Fine-tuned text encoder + TEC head, chosen on validation: the corpora's dev splits as ASR
    would write them and ``spoken_valid`` (tiny.en transcripts of spoken MELD dev lines). The
    corpora's test splits are scored once; spoken test sets are scored by ``score_text``."""
    valid_digest = hashlib.sha1(json.dumps({k: [v.texts, v.labels.tolist()] for k, v in sorted(spoken_valid.items())}
                                           ).encode()).hexdigest()[:10]
    key = {"config": cfg.__dict__, "validation": valid_digest, "meld_train_spoken": MELD_TRAIN_SPOKEN,
           "asr": asr.config.context, "data": 2}
    stem = "tec_v2_" + hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    weights, report_path = cache / f"{stem}.safetensors", cache / f"{stem}_report.json"
    encoder = TextEncoder()
    head = TextHead(encoder.dim, dropout=cfg.dropout)
    if weights.exists() and report_path.exists():
        report = json.loads(report_path.read_text())
        if report.get("key") == key:
            state = load_file(str(weights))
            encoder.load_tuned({k[len("text."):]: v for k, v in state.items() if k.startswith("text.")})
            head.load_state_dict({k[len("text_head."):]: v for k, v in state.items() if k.startswith("text_head.")})
            log.info("TEC: reusing %s", weights)
            return encoder.eval(), head.eval(), report
    torch.manual_seed(cfg.seed)
    train, valid, tests = text_sets(cfg.seed)
    train += meld_transcript_lines(cache, asr, MELD_TRAIN_SPOKEN, cfg.seed + 2)
    head, report = train_tec(encoder, train, {**valid, **spoken_valid}, tests, cfg)
    report["key"] = key
    state = {f"text.{k}": v.contiguous() for k, v in encoder.tuned_state_dict(cfg.tuned_layers).items()}
    state.update({f"text_head.{k}": v.contiguous() for k, v in head.state_dict().items()})
    cache.mkdir(parents=True, exist_ok=True)
    save_file(state, str(weights))
    report_path.write_text(json.dumps(report, indent=2))
    return encoder.eval(), head.eval(), report
