"""Training stages with on-disk results, so a rerun reuses what is already computed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from emostream.engine.text import TextEncoder, TextHead
from emostream.engine.training.corpora import meld_lines
from emostream.engine.training.tec_train import TECConfig, train_tec

log = logging.getLogger(__name__)


def tec_stage(cache: Path, cfg: TECConfig) -> tuple[TextEncoder, TextHead, dict]:
    """Fine-tuned text encoder + TEC head (MELD train, selected on dev, test reported once)."""
    weights, report_path = cache / "tec.safetensors", cache / "tec_report.json"
    encoder = TextEncoder()
    head = TextHead(encoder.dim, dropout=cfg.dropout)
    if weights.exists() and report_path.exists():
        report = json.loads(report_path.read_text())
        if report.get("config") == cfg.__dict__:
            state = load_file(str(weights))
            encoder.load_tuned({k[len("text."):]: v for k, v in state.items() if k.startswith("text.")})
            head.load_state_dict({k[len("text_head."):]: v for k, v in state.items() if k.startswith("text_head.")})
            log.info("TEC: reusing %s", weights)
            return encoder.eval(), head.eval(), report
    torch.manual_seed(cfg.seed)
    splits = {name: meld_lines(name) for name in ("train", "dev", "test")}
    head, report = train_tec(encoder, splits, cfg)
    state = {f"text.{k}": v.contiguous() for k, v in encoder.tuned_state_dict(cfg.tuned_layers).items()}
    state.update({f"text_head.{k}": v.contiguous() for k, v in head.state_dict().items()})
    cache.mkdir(parents=True, exist_ok=True)
    save_file(state, str(weights))
    report_path.write_text(json.dumps(report, indent=2))
    return encoder.eval(), head.eval(), report
