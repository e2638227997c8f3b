"""report.md: the tables of ``emostream train``'s report.json, for people."""

from __future__ import annotations

from emostream.engine.training.text_report import LEAVE_OUT_PER_CLASS


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def report_markdown(report: dict) -> str:
    tec = report["tec"]
    lines = ["## Words (TEC branch)", "",
             f"Trained on {', '.join(f'{k} {v}' for k, v in tec['training_lines'].items())} lines; epoch "
             f"{tec['selected_epoch']} chosen on validation (mean UA).", "",
             "| test set | UA | WA | weighted F1 | n |", "|---|---|---|---|---|"]
    for name, s in {**tec["test"], **tec["spoken_test"]}.items():
        lines.append(f"| {name} | {s['ua']:.3f} | {s['wa']:.3f} | {s['weighted_f1']:.3f} | {s['n']} |")
    lco = tec.get("leave_text_corpus_out", {})
    if lco:
        lines += ["", f"**Leave one text corpus out** (frozen MiniLM + logistic regression on up to "
                  f"{LEAVE_OUT_PER_CLASS:,} lines per corpus and class, UA on the corpus's test split as ASR would "
                  "write it)", "", "| corpus | trained on all three | never trained on it |", "|---|---|---|"]
        lines += [f"| {c} | {v['trained on all three']:.3f} | {v['never trained on it']:.3f} |" for c, v in lco.items()]
    eb = tec.get("emobank")
    if eb:
        lines += ["", f"**Valence/arousal from words** (EmoBank test, n={eb['n_test']}): valence r "
                  f"{eb['valence']['pearson_r']:.3f}, CCC {eb['valence']['ccc']:.3f}; arousal r "
                  f"{eb['arousal']['pearson_r']:.3f}, CCC {eb['arousal']['ccc']:.3f}"]
    lines += ["", "## SEC (voice), speaker-independent folds", "", "| condition | UA |", "|---|---|"]
    lines += [f"| {n} | {v['ua_mean']:.3f} ± {v['ua_std']:.3f} |" for n, v in report["sec"].items()]
    lines += ["", "## Fused vs branches (UA, mean ± std over 5 folds)", "",
              "| set | SEC only | TEC only | fused |", "|---|---|---|---|"]
    for n, row in report["fused"].items():
        lines.append(f"| {n} | " + " | ".join(f"{row[s]['ua_mean']:.3f} ± {row[s]['ua_std']:.3f}"
                                               for s in ("sec_only", "tec_only", "fused")) + " |")
    lco = report.get("leave_corpus_out", {})
    if lco:
        lines += ["", "**Leave-corpus-out** (fused UA; saw every corpus: the folds' fusions, mean; never saw it: "
                  "the final recipe trained on every row of the other corpora)", "",
                  "| corpus left out | test set | fusion saw every corpus | fusion never saw it |", "|---|---|---|---|"]
        lines += [f"| {c} | {n} | {v['fusion saw every corpus']:.3f} | {v['fusion never saw this corpus']:.3f} |"
                  for c, sets in lco.items() for n, v in sets.items()]
    check = report.get("synthesizer_check", {}).get("mean_log_trust_ratio", {})
    if check:
        lines += ["", "**Trust check**: mean log(trust in words / trust in voice), rows with a transcript", "",
                  "| set | r |", "|---|---|"]
        lines += [f"| {n} | {v:+.2f} |" for n, v in check.items()]
    cal = report["calibration"]
    worst = cal.get("worst_validation_ece", {})
    lines += ["", f"## Confidence (calibrator: {cal['chosen']}, {cal.get('chosen_by', 'lowest mean validation ECE')})",
              "", "| calibrator kind | mean validation ECE over corpora | worst validation set's ECE |", "|---|---|---|"]
    lines += [f"| {k} | {v:.3f} | " + (f"{worst[k]:.3f}" if k in worst else "—") + " |"
              for k, v in cal["mean_validation_ece"].items()]
    lines += ["", "| set | stage | accuracy | mean confidence | ECE (15 bins) | > 0.9 | > 0.99 |", "|---|---|---|---|---|---|---|"]
    rows = [(f"{n} (validation, cross-fitted)", {"before": cal["validation"]["before"][n],
                                                 "calibrated": cal["validation"][cal["chosen"]][n]})
            for n in cal["validation"]["before"]] + list(cal["test"].items())
    for name, stages in rows:
        for stage, r in stages.items():
            lines.append(f"| {name} | {stage} | {r['accuracy']:.3f} | {r['mean_confidence']:.3f} | {r['ece']:.3f} | "
                         f"{_pct(r['share_above_0.9'])} | {_pct(r['share_above_0.99'])} |")
    lines += ["", "**Accuracy against coverage** (calibrated; results under the threshold withheld)", "",
              "| set | " + " | ".join(f"≥ {c['threshold']:.1f}" for c in rows[0][1]["calibrated"]["coverage"]) + " |",
              "|---|" + "---|" * len(rows[0][1]["calibrated"]["coverage"])]
    for name, stages in rows:
        lines.append(f"| {name} | " + " | ".join(f"{c['accuracy']:.2f} ({_pct(c['coverage'])})"
                                                 for c in stages["calibrated"]["coverage"]) + " |")
    b = cal["branches"]
    lines += ["", f"Branch temperatures: SEC {b['sec']['temperature']:.2f} (ECE out of fold "
              f"{b['sec']['ece_out_of_fold']['before']:.3f} → "
              f"{b['sec']['ece_out_of_fold']['calibrated (cross-fitted by actors)']:.3f}), "
              f"TEC {b['text']['temperature']:.2f} (" + ", ".join(
                  f"{n}: {v['before']:.3f} → {v['calibrated']:.3f}" for n, v in b["text"]["ece_test"].items()) + ")"]
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items())]
    return "\n".join(lines) + "\n"
