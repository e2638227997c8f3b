"""What the words branch is worth, measured on held-out text: scores per test set, the
leave-one-text-corpus-out view (a corpus never trained on), and valence/arousal from words
(EmoBank, Pearson r and CCC on its test split)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emostream.engine.text import TextEncoder, TextHead
from emostream.engine.training.metrics import scores
from emostream.engine.training.tec_train import TECConfig, TextSet, training_texts
from emostream.engine.training.text_augment import asr_style
from emostream.engine.training.text_corpora import TEXT_CORPORA, emobank_lines, text_corpus

log = logging.getLogger(__name__)


def embed(encoder: TextEncoder, texts: list[str], batch_size: int = 128, desc: str | None = None) -> np.ndarray:
    """Mean-pooled embeddings, batched by length."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), encoder.dim), np.float32)
    with torch.no_grad():
        for k in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False, disable=desc is None):
            idx = order[k:k + batch_size]
            out[idx] = encoder(encoder.tokenize([texts[i] or "." for i in idx]))[1].numpy()
    return out


def text_logits(encoder: TextEncoder, head: TextHead, texts: list[str]) -> np.ndarray:
    with torch.no_grad():
        return head(torch.from_numpy(embed(encoder, texts))).numpy()


def score_text(encoder: TextEncoder, head: TextHead, sets: dict[str, TextSet]) -> dict[str, dict]:
    return {name: scores(s.labels, text_logits(encoder, head, s.texts).argmax(1)) for name, s in sets.items()}


def concordance(a: np.ndarray, b: np.ndarray) -> float:
    """Lin's concordance correlation coefficient."""
    cov = np.mean((a - a.mean()) * (b - b.mean()))
    return float(2 * cov / (a.var() + b.var() + (a.mean() - b.mean()) ** 2))


def _cached_embeddings(cache: Path, name: str, encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    path = cache / f"text_emb_{name}_{len(texts)}.npy"
    if path.exists():
        return np.load(path)
    out = embed(encoder, texts, desc=f"embed {name}")
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


LEAVE_OUT_PER_CLASS = 1000  # training lines per corpus and class: 18k lines in all, not 42k (2 min less to embed)


def leave_text_corpus_out(cache: Path, seed: int) -> dict:
    """The base (untuned) MiniLM, mean-pooled, + logistic regression on up to ``LEAVE_OUT_PER_CLASS``
    lines per corpus and class: UA on each corpus's test split (as ASR would write it) when trained
    on all three corpora and when that corpus is left out."""
    from sklearn.linear_model import LogisticRegression

    base = TextEncoder()
    train = training_texts([l for c in TEXT_CORPORA for l in text_corpus(c, "train")],
                           TECConfig(seed=seed, per_class_cap=LEAVE_OUT_PER_CLASS))
    x = _cached_embeddings(cache, f"base_train_s{seed}", base, [l.text for l in train])
    y = np.array([l.label_index for l in train])
    corpus = np.array([l.corpus for l in train])
    rng = np.random.default_rng([seed, 23])
    tests = {}
    for c in TEXT_CORPORA:
        lines = text_corpus(c, "test")
        tests[c] = (_cached_embeddings(cache, f"base_{c}_test_s{seed}", base, [asr_style(l.text, rng) for l in lines]),
                    np.array([l.label_index for l in lines]))
    out = {}
    for left in (None, *TEXT_CORPORA):
        keep = corpus != left if left else np.ones(len(y), bool)
        clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed).fit(x[keep], y[keep])
        for c, (xt, yt) in tests.items():
            if left is None or c == left:
                out.setdefault(c, {})["trained on all three" if left is None else "never trained on it"] = \
                    scores(yt, clf.predict(xt))["ua"]
    return out


def emobank_va(cache: Path, encoder: TextEncoder) -> tuple[dict, np.ndarray, np.ndarray]:
    """Valence/arousal from words: ridge on the tuned encoder's embedding, alpha chosen on EmoBank
    dev, scored once on test. Returns (report, weight (2, dim), bias (2,))."""
    from sklearn.linear_model import Ridge

    lines = emobank_lines()
    parts = {s: [l for l in lines if l.split == s] for s in ("train", "dev", "test")}
    x = {s: embed(encoder, [l.text for l in v], desc=f"EmoBank {s}") for s, v in parts.items()}
    y = {s: np.array([[l.valence, l.arousal] for l in v]) for s, v in parts.items()}
    best = max((1.0, 10.0, 100.0), key=lambda a: np.mean([
        np.corrcoef(Ridge(alpha=a).fit(x["train"], y["train"]).predict(x["dev"])[:, j], y["dev"][:, j])[0, 1]
        for j in range(2)]))
    model = Ridge(alpha=best).fit(x["train"], y["train"])
    pred = model.predict(x["test"])
    report = {"alpha": best, "n_test": len(pred)}
    for j, dim in enumerate(("valence", "arousal")):
        report[dim] = {"pearson_r": float(np.corrcoef(pred[:, j], y["test"][:, j])[0, 1]),
                       "ccc": concordance(pred[:, j], y["test"][:, j])}
    return report, model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
