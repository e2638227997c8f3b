"""Study: which words-branch recipe, chosen on validation only.

Each candidate is a ``TECConfig`` change from the shipped one (more fine-tuned layers, no ASR-style
renderings, equal classes, ...). Every candidate trains through ``stages.tec_stage`` (cached per
configuration), is compared on the validation sets the pipeline selects epochs on, and is then
scored once on the test sets (typed and ASR-style corpora test splits, tiny.en transcripts of MELD
test lines spoken by espeak-ng and Kokoro voices held out of training).

    python experiments/text_branch_study.py --out runs/text_study \
        '{"tuned_layers": 3}' '{"asr_style_share": 0.0}'
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from emostream.engine.asr import ASRConfig, SpeechRecognizer
from emostream.engine.training.features import build_features
from emostream.engine.training.pipeline import TrainConfig
from emostream.engine.training.stages import tec_stage
from emostream.engine.training.tec_train import TextSet
from emostream.engine.training.text_report import score_text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="*", help="JSON objects of TECConfig fields to change")
    parser.add_argument("--out", default="runs/text_study")
    parser.add_argument("--cache", default=".cache/train")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = TrainConfig(cache=Path(args.cache))
    asr = SpeechRecognizer(ASRConfig(context="real"))
    feats = build_features(cfg, asr)
    valid = {"meld dev spoken (espeak-ng, tiny.en)": TextSet([t.text for t in feats.spoken_text["train"]],
                                                             feats.spoken_labels["train"])}
    tests = {"meld test spoken (espeak-ng, tiny.en)": TextSet([t.text for t in feats.spoken_text["test"]],
                                                              feats.spoken_labels["test"])}
    if feats.neural:
        tests["meld test spoken (Kokoro held-out voices, tiny.en)"] = TextSet(
            [t.text for t in feats.spoken_text["neural test"]], feats.spoken_labels["neural test"])
    rows = {}
    for change in [{}] + [json.loads(c) for c in args.candidates]:
        tec = replace(cfg.tec, **change)
        encoder, head, report = tec_stage(cfg.cache, tec, asr, valid)
        best = max(report["validation_history"], key=lambda h: h["mean_ua"])
        rows[json.dumps(change) if change else "shipped recipe"] = {
            "validation_mean_ua": best["mean_ua"], "selected_epoch": report["selected_epoch"],
            "test": {**{k: v["ua"] for k, v in report["test"].items()},
                     **{k: v["ua"] for k, v in score_text(encoder, head, tests).items()}}}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "text_branch_study.json").write_text(json.dumps(rows, indent=2) + "\n")
    chosen = max(rows, key=lambda k: rows[k]["validation_mean_ua"])
    test_names = list(next(iter(rows.values()))["test"])
    print("| candidate | validation mean UA | " + " | ".join(test_names) + " |")
    print("|---|---|" + "---|" * len(test_names))
    for name, r in rows.items():
        mark = " (chosen on validation)" if name == chosen else ""
        print(f"| {name}{mark} | {r['validation_mean_ua']:.3f} | "
              + " | ".join(f"{r['test'][t]:.3f}" for t in test_names) + " |")
    print(f"mean test UA of the chosen one: {np.mean(list(rows[chosen]['test'].values())):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
