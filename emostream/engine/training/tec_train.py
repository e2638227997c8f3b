"""Fine-tune the top of the text encoder for what ASR writes: MELD, XED and GoEmotions lines, each
in a spoken rendering (``text_augment``), plus real tiny.en transcripts of rendered MELD lines.

Corpora and classes are balanced by sampling weights (``text_corpora.balance_weights``); the epoch
is chosen on validation sets only (dev splits as ASR would write them, transcripts of spoken MELD
dev lines); test sets are scored once, at the end. The frozen lower layers run once per line and
are cached, so each epoch trains only the top layers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from emostream.engine.text import TextEncoder, TextHead, masked_mean
from emostream.engine.training.metrics import confusion, scores
from emostream.engine.training.text_augment import asr_style, spoken_form
from emostream.engine.training.text_corpora import TextLine, balance_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TECConfig:
    tuned_layers: int = 2
    epochs: int = 4
    samples_per_epoch: int = 24_000  # drawn with the balance weights, with replacement
    batch_size: int = 32
    lr: float = 6e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    label_smoothing: float = 0.1
    class_power: float = 0.5  # 0: each corpus's own class mix, 1: equal classes (see balance_weights)
    asr_style_share: float = 0.7  # share of typed lines rendered as a transcript; the rest in spoken form
    per_class_cap: int = 4000  # lines per corpus and class (GoEmotions has 15k happy lines)
    seed: int = 0


@dataclass(frozen=True)
class TextSet:
    """Texts with labels, scored as one set (validation or test)."""

    texts: list[str]
    labels: np.ndarray


def cache_lower(encoder: TextEncoder, texts: list[str], upto: int, desc: str, batch_size: int = 128
                ) -> list[torch.Tensor]:
    """Hidden states after the frozen layers, one (tokens, dim) fp16 tensor per text; batches by
    length so little is padded."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out: list[torch.Tensor | None] = [None] * len(texts)
    with torch.no_grad():
        for k in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
            idx = order[k:k + batch_size]
            batch = encoder.tokenize([texts[i] or "." for i in idx])
            states = encoder.lower_states(batch, upto)
            for i, row, mask in zip(idx, states, batch["attention_mask"]):
                out[i] = row[: int(mask.sum())].to(torch.float16).clone()
    return out  # type: ignore[return-value]


def _pad(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(s.shape[0] for s in states)
    x = torch.zeros(len(states), length, states[0].shape[1])
    mask = torch.zeros(len(states), length, dtype=torch.long)
    for i, s in enumerate(states):
        x[i, : s.shape[0]] = s.float()
        mask[i, : s.shape[0]] = 1
    return x, mask


def embed_cached(encoder: TextEncoder, states: list[torch.Tensor], start: int, batch_size: int = 128) -> torch.Tensor:
    encoder.eval()
    order = np.argsort([s.shape[0] for s in states], kind="stable")
    out = torch.zeros(len(states), encoder.dim)
    with torch.no_grad():
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            x, mask = _pad([states[i] for i in idx])
            out[torch.from_numpy(idx)] = masked_mean(encoder.upper(x, mask, start), mask)
    return out


def training_texts(lines: list[TextLine], cfg: TECConfig) -> list[TextLine]:
    """Capped per corpus and class, each typed line rendered once: as ASR would write it
    (``asr_style_share``) or in its spoken form; transcripts (corpus ``*-asr``) stay as they are."""
    rng = np.random.default_rng([cfg.seed, 11])
    keep: list[TextLine] = []
    groups: dict[tuple[str, str], list[TextLine]] = {}
    for line in lines:
        groups.setdefault((line.corpus, line.label), []).append(line)
    for key in sorted(groups):
        group = groups[key]
        if len(group) > cfg.per_class_cap:
            group = [group[i] for i in sorted(rng.choice(len(group), cfg.per_class_cap, replace=False))]
        keep.extend(group)
    out = []
    for line in keep:
        if line.corpus.endswith("-asr"):
            out.append(line)
            continue
        text = asr_style(line.text, rng) if rng.random() < cfg.asr_style_share else spoken_form(line.text, rng)
        out.append(TextLine(line.corpus, line.split, text, line.label))
    return [l for l in out if l.text.strip()]


def train_tec(encoder: TextEncoder, train_lines: list[TextLine], valid: dict[str, TextSet], tests: dict[str, TextSet],
              cfg: TECConfig) -> tuple[TextHead, dict]:
    """Fine-tune in place; returns the head of the epoch with the best mean validation UA and a
    report (validation per epoch, each test set once)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    start = encoder.num_layers - cfg.tuned_layers
    lines = training_texts(train_lines, cfg)
    weights = balance_weights([TextLine(l.corpus.removesuffix("-asr"), l.split, l.text, l.label) for l in lines],
                              cfg.class_power)
    train_states = cache_lower(encoder, [l.text for l in lines], start, "TEC training lines (frozen layers)")
    train_labels = torch.tensor([l.label_index for l in lines])
    cached = {name: cache_lower(encoder, s.texts, start, f"TEC {name} (frozen layers)")
              for name, s in {**valid, **tests}.items()}
    head = TextHead(encoder.dim, dropout=cfg.dropout)
    for p in encoder.parameters():
        p.requires_grad_(False)
    tuned = [p for layer in encoder.bert.encoder.layer[start:] for p in layer.parameters()]
    for p in tuned:
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": tuned, "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    steps_per_epoch = int(np.ceil(cfg.samples_per_epoch / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[cfg.lr, cfg.head_lr],
                                                total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1)

    def predict(name: str) -> np.ndarray:
        head.eval()
        with torch.no_grad():
            return head(embed_cached(encoder, cached[name], start)).numpy()

    best: tuple[float, dict, dict] | None = None
    history = []
    for epoch in range(cfg.epochs):
        encoder.train()
        head.train()
        drawn = rng.choice(len(lines), size=cfg.samples_per_epoch, p=weights)
        # batches of similar length (less padding), in random order
        drawn = drawn[np.argsort([train_states[i].shape[0] + rng.random() for i in drawn], kind="stable")]
        batches = [drawn[k:k + cfg.batch_size] for k in range(0, len(drawn), cfg.batch_size)]
        bar = tqdm([batches[i] for i in rng.permutation(len(batches))], desc=f"TEC epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch")
        for idx in bar:
            x, mask = _pad([train_states[i] for i in idx])
            emb = masked_mean(encoder.upper(x, mask, start), mask)
            loss = F.cross_entropy(head(emb), train_labels[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        row = {name: scores(s.labels, predict(name).argmax(1)) for name, s in valid.items()}
        row["mean_ua"] = float(np.mean([v["ua"] for v in row.values()]))
        history.append({"epoch": epoch + 1, **row})
        log.info("TEC epoch %d: mean validation UA %.3f", epoch + 1, row["mean_ua"])
        if best is None or row["mean_ua"] > best[0]:
            best = (row["mean_ua"], {k: v.detach().clone() for k, v in encoder.tuned_state_dict(cfg.tuned_layers).items()},
                    {k: v.detach().clone() for k, v in head.state_dict().items()})
    assert best is not None
    encoder.load_tuned(best[1])
    head.load_state_dict(best[2])
    head.eval()
    report = {
        "config": cfg.__dict__,
        "training_lines": {c: int(sum(l.corpus == c for l in lines)) for c in sorted({l.corpus for l in lines})},
        "validation_history": history,
        "selected_epoch": int(np.argmax([h["mean_ua"] for h in history]) + 1),
        "test": {name: scores(s.labels, predict(name).argmax(1)) for name, s in tests.items()},
        "test_confusion": {name: confusion(s.labels, predict(name).argmax(1)) for name, s in tests.items()},
    }
    for p in encoder.parameters():
        p.requires_grad_(False)
    return head, report
