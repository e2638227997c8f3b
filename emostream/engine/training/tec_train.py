"""Fine-tune the top of the text encoder on MELD: select on dev, report test once.

The frozen lower layers are run once and cached, so each epoch only trains the top layers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from emostream.engine.text import TextEncoder, TextHead, masked_mean
from emostream.engine.training.corpora import MeldLine
from emostream.engine.training.metrics import confusion, scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TECConfig:
    tuned_layers: int = 2
    epochs: int = 4
    batch_size: int = 32
    lr: float = 6e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    seed: int = 0


@dataclass
class CachedText:
    states: list[torch.Tensor]  # per line: (tokens, dim) after the frozen layers
    labels: np.ndarray


def cache_lower(encoder: TextEncoder, texts: list[str], upto: int, desc: str, batch_size: int = 64) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    with torch.no_grad():
        for k in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch", leave=False):
            batch = encoder.tokenize(texts[k:k + batch_size])
            states = encoder.lower_states(batch, upto)
            for row, mask in zip(states, batch["attention_mask"]):
                out.append(row[: int(mask.sum())].clone())
    return out


def _pad(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(s.shape[0] for s in states)
    x = torch.zeros(len(states), length, states[0].shape[1])
    mask = torch.zeros(len(states), length, dtype=torch.long)
    for i, s in enumerate(states):
        x[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = 1
    return x, mask


def embed_cached(encoder: TextEncoder, states: list[torch.Tensor], start: int, batch_size: int = 128) -> torch.Tensor:
    encoder.eval()
    outs = []
    with torch.no_grad():
        for k in range(0, len(states), batch_size):
            x, mask = _pad(states[k:k + batch_size])
            outs.append(masked_mean(encoder.upper(x, mask, start), mask))
    return torch.cat(outs)


def train_tec(encoder: TextEncoder, splits: dict[str, list[MeldLine]], cfg: TECConfig) -> tuple[TextHead, dict]:
    """Fine-tune in place; returns the best-on-dev head and a report (dev per epoch, test once)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    start = encoder.num_layers - cfg.tuned_layers
    cached = {
        name: CachedText(cache_lower(encoder, [l.text for l in lines], start, f"MELD {name} (frozen layers)"),
                         np.array([l.label_index for l in lines]))
        for name, lines in splits.items()
    }
    head = TextHead(encoder.dim, dropout=cfg.dropout)
    for p in encoder.parameters():
        p.requires_grad_(False)
    tuned = [p for layer in encoder.bert.encoder.layer[start:] for p in layer.parameters()]
    for p in tuned:
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": tuned, "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    train = cached["train"]
    steps_per_epoch = int(np.ceil(len(train.states) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[cfg.lr, cfg.head_lr],
                                                total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1)
    best: tuple[float, dict, dict] | None = None
    history = []
    for epoch in range(cfg.epochs):
        encoder.train()
        head.train()
        order = rng.permutation(len(train.states))
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"TEC epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        for k in bar:
            idx = order[k:k + cfg.batch_size]
            x, mask = _pad([train.states[i] for i in idx])
            emb = masked_mean(encoder.upper(x, mask, start), mask)
            loss = F.cross_entropy(head(emb), torch.from_numpy(train.labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        head.eval()
        with torch.no_grad():
            dev_pred = head(embed_cached(encoder, cached["dev"].states, start)).argmax(1).numpy()
        dev = scores(cached["dev"].labels, dev_pred)
        history.append({"epoch": epoch + 1, **dev})
        log.info("TEC epoch %d dev %s", epoch + 1, dev)
        if best is None or dev["weighted_f1"] > best[0]:
            best = (dev["weighted_f1"], encoder.tuned_state_dict(cfg.tuned_layers), {k: v.clone() for k, v in head.state_dict().items()})
    assert best is not None
    encoder.load_tuned(best[1])
    head.load_state_dict(best[2])
    head.eval()
    with torch.no_grad():
        test_pred = head(embed_cached(encoder, cached["test"].states, start)).argmax(1).numpy()
    report = {
        "config": cfg.__dict__,
        "dev_history": history,
        "selected_epoch": int(np.argmax([h["weighted_f1"] for h in history]) + 1),
        "test": scores(cached["test"].labels, test_pred),
        "test_confusion": confusion(cached["test"].labels, test_pred),
    }
    for p in encoder.parameters():
        p.requires_grad_(False)
    return head, report
