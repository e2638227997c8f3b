"""The training report as Markdown tables (written next to report.json, pasted into the README)."""

from __future__ import annotations


METRIC_NAMES = {"ua": "UA", "wa": "WA", "weighted_f1": "wF1"}


def _pm(d: dict, key: str) -> str:
    return f"{d[key + '_mean']:.3f} ± {d[key + '_std']:.3f}"


def report_markdown(report: dict) -> str:
    sec = report["sec"]
    tec = report["tec"]["test"]
    p = report["perspectives"]
    lines = [
        "**SEC, RAVDESS, speaker-independent 5 folds × 4 actors, 7 classes (mean ± std over folds)**",
        "",
        "| SEC approach | UA | WA |",
        "|---|---|---|",
        f"| (b) Whisper tiny.en encoder, {sec['whisper_b']['variant']} (shipped) | {_pm(sec['whisper_b'], 'ua')} "
        f"| {_pm(sec['whisper_b'], 'wa')} |",
    ]
    if sec.get("compact_scratch_a"):
        a = sec["compact_scratch_a"]
        lines.append(f"| (a) compact conv encoder from scratch on log-mel | {_pm(a, 'ua')} | {_pm(a, 'wa')} |")
    lines += [
        "",
        f"**TEC, MELD test (2,610 lines, selected on dev, reported once):** weighted F1 {tec['weighted_f1']:.3f}, "
        f"UA {tec['ua']:.3f}, WA {tec['wa']:.3f}",
        "",
        "**Both perspectives** — RAVDESS: held-out actors per fold (emotional voice, neutral words); "
        "MELD spoken: MELD test lines spoken by espeak-ng (emotional words, flat voice); union: both. "
        "Every branch sees the ASR transcript, not the reference text. Mean ± std over the 5 folds.",
        "",
        "| set | metric | SEC only | TEC only | fused |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("ravdess", "RAVDESS"), ("meld_spoken", "MELD spoken"), ("union", "union")):
        for metric in ("ua", "wa", "weighted_f1"):
            row = " | ".join(_pm(p[name][s], metric) for s in ("sec_only", "tec_only", "fused"))
            lines.append(f"| {label} | {METRIC_NAMES[metric]} | {row} |")
    return "\n".join(lines) + "\n"
