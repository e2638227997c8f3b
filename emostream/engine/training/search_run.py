"""``emostream search``: the MFSN fusion search and its evidence table.

1. Data (``search_data``): RAVDESS + MELD lines spoken by many espeak-ng voices (test lines by
   voices never heard in training), noise and reverberation in both halves; cached sequences.
2. Evidence, on every speaker-independent fold (5 x 4 RAVDESS actors held out; the spoken MELD
   test lines are scored in every fold, their SEC logits coming from that fold's probe): SEC only,
   TEC only, the engine's fixed fusion, plain concatenation, the searched cell (first-order DARTS
   on that fold's training part only, derived, retrained from scratch), random cells from the
   same space. All fusions see the same branch outputs; SEC logits of training rows are inner
   out-of-fold, so fusion learns from SEC answers as wrong as they will be on unseen speakers.
4. Synthesizer check: does the searched cell's trust follow how informative each branch is, or
   only which corpus (natural voice vs espeak-ng) an utterance came from?
5. The shipped candidate: one more search on every actor + the dev lines, retrained on them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from emostream.engine.fusion.genotype import Genotype
from emostream.engine.fusion.searched import BUNDLE_PARTS_READ, save_cell
from emostream.engine.training.calibration_fit import choose_calibrator
from emostream.engine.training.fusion_features import SequenceFeatures
from emostream.engine.training.fusion_search import (CONCAT, SearchConfig, predict, random_genotype, search,
                                                     train_cell)
from emostream.engine.training.search_data import SearchDataConfig, build_search_data, meld_dev_keys
from emostream.labels import LABELS

log = logging.getLogger(__name__)

ROWS = ("sec_only", "tec_only", "fixed_fusion", "concat", "searched", "random")
SETS = ("ravdess", "meld_test", "union")


@dataclass
class SearchRunConfig:
    out: Path = Path("runs/search")
    data: SearchDataConfig = field(default_factory=SearchDataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    random_cells: int = 5
    folds: int = 5
    probe_c: float = 0.003  # the shipped SEC probe's regularisation
    latency_runs: int = 30
    genotype: Path | None = None  # skip the search and evaluate this genotype
    seed: int = 0


def merge(parts: list[SequenceFeatures]) -> SequenceFeatures:
    def cat(name):
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return SequenceFeatures(sum((p.speech for p in parts), []), sum((p.speech_mask for p in parts), []),
                            sum((p.text for p in parts), []), cat("asr_confidence"), cat("labels"), cat("groups"),
                            *[cat(k) for k in SequenceFeatures.OPTIONAL])


@dataclass
class Layout:
    """Where each part sits in the merged features."""

    actors: np.ndarray  # (N,) RAVDESS actor id, 0 for spoken MELD
    meld_dev: np.ndarray
    meld_test: np.ndarray

    @classmethod
    def of(cls, data: SequenceFeatures) -> "Layout":
        groups = data.groups.astype(str)
        actors = np.array([int(g.split(":")[1]) if g.startswith("ravdess:") else 0 for g in groups])
        return cls(actors, np.flatnonzero(groups == "meld_dev"), np.flatnonzero(groups == "meld_test"))

    def ravdess(self, actors) -> np.ndarray:
        return np.flatnonzero(np.isin(self.actors, actors))


def probe_logits(data: SequenceFeatures, train: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit the SEC probe on ``train`` rows; (standardised stats, logits over every label) for every
    row. A label absent from the training rows gets a logit far below the rest."""
    from emostream.engine.training.sec_train import fit_stats_probe
    from emostream.labels import LABELS

    mean, scale, clf = fit_stats_probe(data.sec_stats[train], data.labels[train], c, seed)
    emb = ((data.sec_stats - mean) / scale).astype(np.float32)
    logits = np.full((len(emb), len(LABELS)), -30.0, np.float32)
    logits[:, clf.classes_] = clf.decision_function(emb)
    return emb, logits


def fold_branches(data: SequenceFeatures, layout: Layout, train_actors: list[int], c: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """SEC embedding + logits for one outer fold: a probe on all its training actors for every row,
    replaced on the training actors' own rows by inner out-of-fold logits (leave-4-actors-out)."""
    emb, logits = probe_logits(data, layout.ravdess(train_actors), c, seed)
    inner = np.array_split(np.asarray(train_actors), max(2, len(train_actors) // 4))
    for held in inner:
        rows = layout.ravdess(held)
        _, inner_logits = probe_logits(data, layout.ravdess(np.setdiff1d(train_actors, held)), c, seed)
        logits[rows] = inner_logits[rows]
    return emb, logits


def out_of_fold_parts(probs: np.ndarray, sec_logits: np.ndarray, data: SequenceFeatures, layout: Layout,
                      folds: list[list[int]], dev_fold: np.ndarray) -> dict[str, tuple[np.ndarray, ...]]:
    """A fusion's out-of-fold rows as ``calibration_fit.choose_calibrator`` takes them: RAVDESS
    (held-out actors) and the spoken dev lines (held-out fifths), with each row's signals."""
    from emostream.engine.calibration import calibration_signals
    from emostream.engine.training.corpora import fold_of_actors

    rav = layout.ravdess([a for f in folds for a in f])
    actor_fold = fold_of_actors(layout.actors[rav], folds)
    parts = {}
    for name, idx, fold in (("RAVDESS (half degraded)", rav, actor_fold),
                            ("espeak-ng MELD dev (out of fold)", layout.meld_dev, dev_fold)):
        signals = calibration_signals(sec_logits[idx], data.text_logits[idx], data.has_text[idx],
                                      data.asr_confidence[idx])
        parts[name] = (np.log(np.clip(probs[idx], 1e-9, 1.0)), data.labels[idx], signals, fold)
    return parts


def fixed_fusion(data: SequenceFeatures, train: np.ndarray, sec_emb: np.ndarray, sec_logits: np.ndarray, seed: int):
    """The engine issue's fusion, trained the way ``emostream train`` trains it."""
    from emostream.engine.fusion import FusionConfig
    from emostream.engine.training.fusion_train import FusionTrainConfig, train_fusion

    return train_fusion(branch_rows(data, train, sec_emb, sec_logits), FusionTrainConfig(seed=seed),
                        FusionConfig(sec_dim=sec_emb.shape[1], text_dim=data.text_emb.shape[1]))


def branch_rows(data: SequenceFeatures, idx: np.ndarray, sec_emb: np.ndarray, sec_logits: np.ndarray):
    from emostream.engine.training.fusion_train import BranchRows, va_targets

    has = data.has_text[idx].astype(np.float32)
    return BranchRows(sec_emb[idx], sec_logits[idx], data.text_emb[idx], data.text_logits[idx],
                      data.asr_confidence[idx], has, data.labels[idx],
                      va_targets(data.labels[idx], np.full(len(idx), 0.85)))


def fusion_latency_ms(model, data: SequenceFeatures, idx: np.ndarray, sec_emb, sec_logits, runs: int) -> list[float]:
    """Wall times (ms) of single utterances through a fusion model on CPU (one thread, batch 1)."""
    from emostream.engine.fusion import FusionClassifier
    from emostream.engine.training.fusion_features import collate
    from emostream.engine.training.fusion_train import _tensors, torch_threads

    times = []
    with torch_threads(1), torch.inference_mode():
        for k in range(runs + 3):
            i = idx[k % len(idx):k % len(idx) + 1]
            if isinstance(model, FusionClassifier):
                args = _tensors(branch_rows(data, i, sec_emb, sec_logits))
            else:
                args = collate(data, i, sec_logits)[:-1]
            t = time.perf_counter()
            model(*args)
            if k >= 3:
                times.append((time.perf_counter() - t) * 1e3)
    return times


def summarize(per_fold: list[dict]) -> dict:
    """metrics.summarize_folds as {metric: [mean, std]}, the table's shape."""
    from emostream.engine.training.metrics import summarize_folds

    s = summarize_folds(per_fold)
    return {key: [s[f"{key}_mean"], s[f"{key}_std"]] for key in ("ua", "wa", "weighted_f1")}


def mean_std(values) -> list[float]:
    return [float(np.mean(values)), float(np.std(values))]


def log_trust_ratio(trust: np.ndarray) -> np.ndarray:
    """r = log(trust_text / trust_speech) per row of a (N, 2) trust array."""
    return np.log(trust[:, 1] + 1e-6) - np.log(trust[:, 0] + 1e-6)


def synthesizer_check(trust: np.ndarray, data: SequenceFeatures, idx: np.ndarray, sec_logits: np.ndarray) -> dict:
    """Does trust(text) / trust(speech) follow branch informativeness within each corpus?
    ``trust`` and ``sec_logits`` are aligned with ``idx`` (rows of ``data``).

    r = log(trust_text / trust_sec). If the cell keyed on the synthesizer, r would be one value per
    corpus: the corpus would explain ~all its variance and nothing would be left to correlate with
    how sure each branch is. Reported: the share of r's variance the corpus explains, and within
    each corpus the Spearman correlation of r with (TEC max-prob - SEC max-prob).
    """
    from scipy.special import softmax
    from scipy.stats import spearmanr

    def maxprob(logits):
        return softmax(logits, axis=1).max(1)

    has = data.has_text[idx]
    keep = idx[has]
    r = log_trust_ratio(trust[has])
    synthetic = np.array([not g.startswith("ravdess:") for g in data.groups[keep].astype(str)])
    gap = maxprob(data.text_logits[keep]) - maxprob(sec_logits[has])
    between = sum(m.sum() * (r[m].mean() - r.mean()) ** 2 for m in (synthetic, ~synthetic) if m.any())
    degraded = np.array(["degraded=1" in t for t in data.tags[keep].astype(str)])
    out = {"corpus_share_of_variance": float(between / (((r - r.mean()) ** 2).sum() + 1e-12)), "by_corpus": {}}
    for name, m in (("natural voices (RAVDESS)", ~synthetic), ("espeak-ng voices (MELD)", synthetic)):
        rho = spearmanr(r[m], gap[m]).statistic if m.sum() > 2 else float("nan")
        out["by_corpus"][name] = {
            "n": int(m.sum()), "spearman_r_vs_confidence_gap": float(rho),
            "mean_log_trust_ratio": {name: (float(r[m & sel].mean()) if (m & sel).any() else None)
                                     for name, sel in (("clean", ~degraded), ("degraded", degraded))},
        }
    return out


def swapped_words(data: SequenceFeatures, speech_idx: np.ndarray, words_idx: np.ndarray) -> SequenceFeatures:
    """Utterance i's audio with utterance j's transcript (tokens, TEC outputs, ASR confidence)."""
    return SequenceFeatures([data.speech[i] for i in speech_idx], [data.speech_mask[i] for i in speech_idx],
                            [data.text[j] for j in words_idx], data.asr_confidence[words_idx],
                            data.labels[speech_idx], data.groups[speech_idx], data.sec_stats[speech_idx],
                            data.text_emb[words_idx], data.text_logits[words_idx], None)


def counterfactual_check(models: dict, data: SequenceFeatures, natural: np.ndarray, synthetic: np.ndarray,
                         sec_emb: np.ndarray, sec_logits: np.ndarray, seed: int) -> dict:
    """Swap the words between a natural-voice and an espeak-ng utterance and watch the trust.

    Four combinations, paired utterance by utterance: natural voice + its own (neutral) words,
    natural voice + emotional MELD words, espeak-ng voice + its own MELD words, espeak-ng voice +
    RAVDESS's neutral words. r = log(trust_text / trust_sec). A fusion that learned "synthetic voice
    -> trust the words" moves r with the voice and not with the words; one that reads how
    informative each cue is moves r with the words, whatever the voice.
    """
    from emostream.engine.fusion import FusionClassifier
    from emostream.engine.training.fusion_train import _tensors

    rng = np.random.default_rng(seed)
    n = min(len(natural), len(synthetic))
    nat, syn = rng.permutation(natural)[:n], rng.permutation(synthetic)[:n]
    combos = {"natural voice + own neutral words": (nat, nat), "natural voice + MELD words": (nat, syn),
              "espeak-ng voice + own MELD words": (syn, syn), "espeak-ng voice + RAVDESS words": (syn, nat)}
    out = {}
    for name, model in models.items():
        means = {}
        for combo, (speech_idx, words_idx) in combos.items():
            feats = swapped_words(data, speech_idx, words_idx)
            logits, emb = sec_logits[speech_idx], sec_emb[speech_idx]
            local = np.arange(n)
            if isinstance(model, FusionClassifier):
                with torch.inference_mode():
                    trust = model.trust_weights(*_tensors(branch_rows(feats, local, emb, logits)))[0].numpy()
            else:
                trust = predict(model, feats, local, logits, trust=True)
            means[combo] = float(np.mean(log_trust_ratio(trust[feats.has_text])))
        c = list(combos)
        out[name] = {"mean_log_trust_ratio": means,
                     "word_effect_natural_voice": means[c[1]] - means[c[0]],
                     "word_effect_espeak_voice": means[c[2]] - means[c[3]],
                     "voice_effect_meld_words": means[c[2]] - means[c[1]],
                     "voice_effect_ravdess_words": means[c[3]] - means[c[0]], "pairs": int(n)}
    return out


def run_search(cfg: SearchRunConfig, recognizer, say=print) -> dict:
    from emostream.engine.training.corpora import actor_folds
    from emostream.engine.training.fusion_train import branch_only, predict_fusion
    from emostream.engine.training.metrics import scores

    torch.manual_seed(cfg.seed)
    t0 = time.time()
    parts = build_search_data(cfg.data, recognizer)
    data = merge([parts[p] for p in ("ravdess", "meld_dev", "meld_test")])
    layout = Layout.of(data)
    folds = actor_folds(cfg.folds)
    all_actors = sorted(set(layout.actors[layout.actors > 0].tolist()))
    # the spoken dev lines are folded too (by their words), so every fold's fusion leaves a fifth of
    # them unseen: the out-of-fold rows the searched cell's calibrator is fitted on
    keys = meld_dev_keys(cfg.data)
    if len(keys) != len(layout.meld_dev):
        raise RuntimeError(f"search cache holds {len(layout.meld_dev)} MELD dev lines, the config {len(keys)}")
    unique = sorted(set(keys))
    fold_of = dict(zip(unique, np.random.default_rng([cfg.seed, 43]).permutation(len(unique)) % cfg.folds))
    dev_fold = np.array([fold_of[k] for k in keys])
    say(f"data ready ({time.time() - t0:.0f} s): {len(layout.ravdess(all_actors))} RAVDESS, "
        f"{len(layout.meld_dev)} spoken MELD dev (training voices), {len(layout.meld_test)} spoken MELD test "
        "(held-out voices)")
    cfg.out.mkdir(parents=True, exist_ok=True)

    def find_genotype(train: np.ndarray, logits: np.ndarray, label: str) -> tuple[Genotype, list[dict]]:
        if cfg.genotype:
            return Genotype.load(cfg.genotype), []
        return search(data, train, logits, cfg.search,
                      progress=lambda e, w: say(f"{label}: search epoch {e}/{cfg.search.epochs}"))

    rng = np.random.default_rng(cfg.seed + 100)
    randoms = [random_genotype(cfg.search.cell.nodes, rng) for _ in range(cfg.random_cells)]
    search_s = 0.0

    # evidence, fold by fold
    results: dict[str, list] = {row: [] for row in ROWS if row != "random"}
    results.update({f"random_{i + 1}": [] for i in range(cfg.random_cells)})
    models_for_latency: dict[str, tuple] = {}
    trust_rows, fold_genotypes, fold1_history = [], [], []
    oof = {row: np.zeros((len(data.labels), len(LABELS))) for row in ("searched", "fixed_fusion")}
    oof_sec = np.zeros((len(data.labels), len(LABELS)), np.float32)
    t2 = time.time()
    for k, held in enumerate(folds):
        train_actors = [a for a in all_actors if a not in held]
        emb, logits = fold_branches(data, layout, train_actors, cfg.probe_c, cfg.seed)
        train = np.concatenate([layout.ravdess(train_actors), layout.meld_dev[dev_fold != k]])
        held_out = np.concatenate([layout.ravdess(held), layout.meld_dev[dev_fold == k]])
        oof_sec[held_out] = logits[held_out]
        # the search sees only this fold's training part (its own held-out architecture split inside)
        t_search = time.time()
        genotype, history = find_genotype(train, logits, f"fold {k + 1}/{len(folds)}")
        search_s += time.time() - t_search
        fold_genotypes.append(genotype.to_dict())
        if k == 0:
            fold1_history = history
        sets = {"ravdess": layout.ravdess(held), "meld_test": layout.meld_test}
        sets["union"] = np.concatenate([sets["ravdess"], sets["meld_test"]])

        def record(row: str, predict_set):
            results[row].append({name: scores(data.labels[idx], predict_set(idx)) for name, idx in sets.items()})

        record("sec_only", lambda idx: branch_only(branch_rows(data, idx, emb, logits))["sec_only"])
        record("tec_only", lambda idx: branch_only(branch_rows(data, idx, emb, logits))["tec_only"])
        fixed = fixed_fusion(data, train, emb, logits, cfg.seed)
        record("fixed_fusion", lambda idx: predict_fusion(fixed, branch_rows(data, idx, emb, logits))[0].argmax(1))
        oof["fixed_fusion"][held_out] = predict_fusion(fixed, branch_rows(data, held_out, emb, logits))[0]
        for row, g in [("concat", CONCAT), ("searched", genotype)] + [(f"random_{i + 1}", r) for i, r in
                                                                      enumerate(randoms)]:
            say(f"fold {k + 1}/{len(folds)}: training {row}…")
            model = train_cell(data, train, logits, g, cfg.search)
            record(row, lambda idx: predict(model, data, idx, logits).argmax(1))
            if k == 0:
                models_for_latency[row] = model
            if row == "searched":
                oof["searched"][held_out] = predict(model, data, held_out, logits)
                trust_rows.append((sets["union"], predict(model, data, sets["union"], logits, trust=True), logits))
        if k == 0:
            models_for_latency["fixed_fusion"] = fixed
            latency_inputs = (emb, logits)
            swap = counterfactual_check({"searched": models_for_latency["searched"], "fixed_fusion": fixed,
                                         "concat": models_for_latency["concat"]}, data, sets["ravdess"],
                                        sets["meld_test"], emb, logits, cfg.seed)
        say(f"fold {k + 1}: searched union UA {results['searched'][-1]['union']['ua']:.3f}, fixed "
            f"{results['fixed_fusion'][-1]['union']['ua']:.3f}, concat {results['concat'][-1]['union']['ua']:.3f}")
    folds_s = time.time() - t2

    # table
    table: dict[str, dict] = {}
    for row, per_fold in results.items():
        table[row] = {name: summarize([f[name] for f in per_fold]) for name in SETS}
    random_rows = [r for r in results if r.startswith("random_")]
    table["random"] = {name: {key: mean_std([table[r][name][key][0] for r in random_rows])
                              for key in ("ua", "wa", "weighted_f1")} for name in SETS}
    idx_lat = np.concatenate([layout.ravdess(folds[0])[:20], layout.meld_test[:20]])
    latency_samples = {}
    for row, model in models_for_latency.items():
        table[row]["parameters"] = int(sum(p.numel() for p in model.parameters()))
        latency_samples[row] = fusion_latency_ms(model, data, idx_lat, *latency_inputs, cfg.latency_runs)
        table[row]["latency_ms"] = float(np.median(latency_samples[row]))
        table[row]["latency_p95_ms"] = float(np.percentile(latency_samples[row], 95))
    for key in ("parameters", "latency_ms"):
        table["random"][key] = mean_std([table[r][key] for r in random_rows])

    verdict = shipping_verdict(table)
    say(verdict["reason"])
    union_idx = np.concatenate([t[0] for t in trust_rows])
    check = synthesizer_check(np.concatenate([t[1] for t in trust_rows]), data, union_idx,
                              np.concatenate([t[2][t[0]] for t in trust_rows]))

    # the searched cell's confidence: calibrated like the engine's fusion, on its out-of-fold rows
    # (fitted on the five fold cells' outputs: the search procedure's, as the shipped cell is its sixth run)
    calib, calibration, _ = choose_calibrator(out_of_fold_parts(oof["searched"], oof_sec, data, layout, folds, dev_fold))
    fixed_calibration = choose_calibrator(out_of_fold_parts(oof["fixed_fusion"], oof_sec, data, layout, folds,
                                                            dev_fold))[1]
    calibration["fixed fusion, same rows"] = {k: fixed_calibration[k] for k in
                                              ("chosen", "worst_validation_ece", "mean_validation_ece")}
    say(f"searched cell's calibration: {calibration['chosen']} (worst validation ECE "
        f"{calibration['worst_validation_ece'][calibration['chosen']]:.3f})")

    # the shipped candidate: searched and trained on every actor (inner out-of-fold SEC logits) + dev lines
    say("searching and training the shipped candidate on every actor…")
    _, logits_all = fold_branches(data, layout, all_actors, cfg.probe_c, cfg.seed)
    everything = np.concatenate([layout.ravdess(all_actors), layout.meld_dev])
    genotype, history = find_genotype(everything, logits_all, "final")
    genotype.save(cfg.out / "genotype.json")
    final = train_cell(data, everything, logits_all, genotype, cfg.search)
    save_cell(final, cfg.out / "fusion-searched",
              {"chosen_by": "first-order DARTS on all RAVDESS actors + spoken MELD dev lines (emostream search)",
               "evidence": "search_report.json / table.md of the same run (nested 5-fold)", "table": table,
               "bundle": {"model_id": recognizer.bundle.model_id,  # the branches the cell was trained against
                          "digest": recognizer.bundle.digest(*BUNDLE_PARTS_READ)},
               "calibration": {**calib.to_manifest(calibration["chosen"]),
                               "fitted_on": "out-of-fold outputs of the 5 fold searches' cells (held-out actors, "
                                            "held-out fifths of the spoken dev lines)"}})
    report = {
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "genotype": genotype.to_dict(), "fold_genotypes": fold_genotypes,
        "random_genotypes": [g.to_dict() for g in randoms],
        "table": table, "shipping": verdict, "calibration": calibration, "per_fold": results, "synthesizer_check": {**check, "swapped_words_fold1": swap}, "history": history,
        "fold1_history": fold1_history,
        "latency_samples_ms": latency_samples,
        "timings_s": {"search": round(search_s, 1), "folds": round(folds_s, 1), "total": round(time.time() - t0, 1)},
        "notes": "nested: every fold searches on its own training part (RAVDESS training actors + spoken MELD dev "
                 "lines), derives, retrains from scratch and is scored on its held-out actors and the spoken MELD "
                 "test lines (held-out voices; the same lines in every fold, with that fold's SEC probe and fusion). "
                 "The shipped genotype comes from one more search on every actor.",
    }
    (cfg.out / "search_report.json").write_text(json.dumps(report, indent=1))
    (cfg.out / "table.md").write_text(table_markdown(table, cfg.random_cells))
    if history:
        plot_history(history, cfg.out / "architecture_weights.png")
    plot_cell(genotype, cfg.out / "cell.png")
    plot_latency(latency_samples, cfg.out / "fusion_latency.png")
    return report


def shipping_verdict(table: dict) -> dict:
    """Issue 6's rule: the searched cell becomes the default only if it beats the fixed fusion on the
    union set (UA) and loses at most 0.01 UA on the RAVDESS folds and 0.01 weighted F1 on MELD test."""
    s, f = table["searched"], table["fixed_fusion"]
    deltas = {"union_ua": s["union"]["ua"][0] - f["union"]["ua"][0],
              "ravdess_ua": s["ravdess"]["ua"][0] - f["ravdess"]["ua"][0],
              "meld_test_weighted_f1": s["meld_test"]["weighted_f1"][0] - f["meld_test"]["weighted_f1"][0]}
    ship = deltas["union_ua"] > 0 and deltas["ravdess_ua"] >= -0.01 and deltas["meld_test_weighted_f1"] >= -0.01
    reason = ("searched cell - fixed fusion: union UA {union_ua:+.3f}, RAVDESS UA {ravdess_ua:+.3f}, MELD test wF1 "
              "{meld_test_weighted_f1:+.3f} -> ".format(**deltas)
              + ("the searched cell qualifies as the default" if ship else "the fixed fusion stays the default"))
    return {"ship_searched": bool(ship), "deltas": deltas, "reason": reason}


LABEL_OF = {"sec_only": "SEC only (probe)", "tec_only": "TEC only (text head)", "fixed_fusion": "fixed fusion (engine)",
            "concat": "plain concatenation", "searched": "**searched cell**"}


def table_markdown(table: dict, random_cells: int) -> str:
    head = ("| system | RAVDESS UA | RAVDESS WA | RAVDESS wF1 | MELD test UA | MELD test WA | MELD test wF1 | "
            "union UA | union WA | union wF1 | params | fusion ms (median) |\n|" + "---|" * 12 + "\n")
    lines = []
    for row in list(LABEL_OF) + ["random"]:
        t = table[row]
        name = LABEL_OF.get(row, f"random cells (n={random_cells})")
        cells = [f"{t[s][k][0]:.3f} ± {t[s][k][1]:.3f}" for s in SETS for k in ("ua", "wa", "weighted_f1")]
        params = t.get("parameters", "—")
        lat = t.get("latency_ms", "—")
        fmt = lambda v, f: (f"{v[0]:{f}} ± {v[1]:{f}}" if isinstance(v, list) else (f"{v:{f}}" if v != "—" else v))  # noqa: E731
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt(params, ',.0f')} | {fmt(lat, '.2f')} |")
    return head + "\n".join(lines) + "\n"


def plot_cell(genotype, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(genotype.nodes)
    pos = {0: (0.0, 0.5)} | {k: (k / n, 0.5 + (0.3 if k % 2 else -0.3)) for k in range(1, n + 1)}
    fig, ax = plt.subplots(figsize=(2.8 * (n + 1), 3.6))
    for k, edges in enumerate(genotype.nodes, start=1):
        for e in edges:
            (x0, y0), (x1, y1) = pos[e.source], pos[k]
            ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": "0.3"})
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, e.op.replace("_", " "), fontsize=8, ha="center",
                    bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    for k, (x, y) in pos.items():
        ax.text(x, y, "text\n(+summary)" if k == 0 else f"node {k}", ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "circle", "fc": "#dde8f5" if k else "#f5e6d3"})
    ax.text(1.08, 0.5, f"mean of nodes\n→ {genotype.pooling} pooling\n→ trust head", fontsize=9, va="center")
    ax.set_xlim(-0.15, 1.3)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title("Derived fusion cell (speech frames are every operation's context)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = list(history[0]["edges"])
    ops = list(history[0]["edges"][edges[0]])
    fig, axes = plt.subplots(1, len(edges), figsize=(3.2 * len(edges), 3), sharey=True)
    epochs = [h["epoch"] for h in history]
    for ax, edge in zip(np.atleast_1d(axes), edges):
        for op in ops:
            ax.plot(epochs, [h["edges"][edge][op] for h in history], label=op)
        ax.set_title(f"edge {edge}")
        ax.set_xlabel("epoch")
    np.atleast_1d(axes)[0].set_ylabel("softmax(alpha)")
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(samples: dict[str, list[float]], path: Path) -> None:
    """Fusion time per utterance, one box per system, with the 10 ms budget drawn in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples)
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 3.6))
    ax.boxplot([samples[n] for n in names], showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), [n.replace("_", " ") for n in names], rotation=30, ha="right")
    ax.axhline(10, color="tab:red", ls="--", lw=1)
    ax.text(len(names) + 0.4, 10, "10 ms budget", color="tab:red", va="bottom", ha="right", fontsize=8)
    ax.set_ylabel("ms per utterance (CPU, 1 thread)")
    ax.set_ylim(0, max(11, max(max(v) for v in samples.values()) * 1.05))
    ax.set_title("Fusion latency per utterance")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
