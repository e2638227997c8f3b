"""``emostream search``: build the sequence features, run the DARTS search, write the genotype,
a JSON report and PNGs (the derived cell as a graph; architecture weights over epochs).

Data: RAVDESS actors 1-20 (emotional voice, neutral words) and MELD lines spoken by espeak-ng
(emotional words, flat voice) with the ASR transcripts the product would see (cached by
``emostream train``). The search uses fold 1's training actors plus the spoken MELD dev lines;
fold 1's test actors and the spoken MELD test lines are only evaluated.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emostream.engine.training.fusion_features import SequenceFeatures, sequence_features
from emostream.engine.training.fusion_search import SearchConfig, predict, random_genotype, search, train_cell

log = logging.getLogger(__name__)


@dataclass
class SearchRunConfig:
    out: Path = Path("runs/search")
    cache: Path = Path(".cache/train")
    search: SearchConfig = field(default_factory=SearchConfig)
    random_cells: int = 2
    union_lines: int = 600
    seed: int = 0


def build_features(cfg: SearchRunConfig, recognizer) -> dict[str, SequenceFeatures]:
    """RAVDESS and spoken-MELD sequence features, cached as .npz next to the training caches."""
    from emostream.engine.training.corpora import ravdess_clips
    from emostream.engine.training.union import ravdess_waveforms, spoken_meld, synthesize, transcripts

    out: dict[str, SequenceFeatures] = {}
    path = cfg.cache / "seq_ravdess.npz"
    if path.exists():
        out["ravdess"] = SequenceFeatures.load(path)
    else:
        clips = ravdess_clips()
        waves = ravdess_waveforms(clips)
        tr = transcripts(cfg.cache, f"ravdess{len(clips)}", recognizer.asr, waves)
        out["ravdess"] = sequence_features(recognizer, waves, [t.text for t in tr], [t.confidence for t in tr],
                                           [c.label_index for c in clips], [f"ravdess:{c.actor:02d}" for c in clips],
                                           desc="RAVDESS sequences")
        out["ravdess"].save(path)
    for name, split, seed in (("meld_train", "dev", cfg.seed), ("meld_test", "test", cfg.seed + 1)):
        path = cfg.cache / f"seq_{name}.npz"
        if path.exists():
            out[name] = SequenceFeatures.load(path)
            continue
        lines = spoken_meld(split, cfg.union_lines, seed)
        waves = synthesize(lines)
        tr = transcripts(cfg.cache, f"meld_{name.split('_')[1]}{len(waves)}", recognizer.asr, waves)
        out[name] = sequence_features(recognizer, waves, [t.text for t in tr], [t.confidence for t in tr],
                                      [s.line.label_index for s in lines], ["meld"] * len(lines),
                                      desc=f"spoken MELD {split} sequences")
        out[name].save(path)
    return out


def merge(parts: list[SequenceFeatures]) -> SequenceFeatures:
    return SequenceFeatures(sum((p.speech for p in parts), []), sum((p.speech_mask for p in parts), []),
                            sum((p.text for p in parts), []), np.concatenate([p.asr_confidence for p in parts]),
                            np.concatenate([p.labels for p in parts]), np.concatenate([p.groups for p in parts]))


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
    ax.text(1.08, 0.5, f"mean of nodes\n→ {genotype.pooling} pooling\n→ heads", fontsize=9, va="center")
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


def run_search(cfg: SearchRunConfig, recognizer, say=print) -> dict:
    from emostream.engine.training.corpora import actor_folds
    from emostream.engine.training.metrics import scores

    t0 = time.time()
    feats = build_features(cfg, recognizer)
    data = merge([feats["ravdess"], feats["meld_train"], feats["meld_test"]])
    n_rav, n_tr = len(feats["ravdess"]), len(feats["meld_train"])
    actors = np.array([int(g.split(":")[1]) for g in feats["ravdess"].groups])
    test_actors = actor_folds()[0]
    rav_test = np.flatnonzero(np.isin(actors, test_actors))
    rav_train = np.flatnonzero(~np.isin(actors, test_actors))
    meld_train = n_rav + np.arange(n_tr)
    meld_test = n_rav + n_tr + np.arange(len(feats["meld_test"]))
    train_idx = np.concatenate([rav_train, meld_train])
    say(f"features ready ({time.time() - t0:.0f} s): {len(train_idx)} search/train utterances, "
        f"{len(rav_test)} RAVDESS test (actors {test_actors}), {len(meld_test)} spoken MELD test")

    t1 = time.time()
    genotype, history = search(data, train_idx, cfg.search,
                               progress=lambda e, w: say(f"search epoch {e}/{cfg.search.epochs}"))
    search_s = time.time() - t1
    cfg.out.mkdir(parents=True, exist_ok=True)
    genotype.save(cfg.out / "genotype.json")

    def evaluate(g) -> dict:
        cell = train_cell(data, train_idx, g, cfg.search)
        out = {}
        for name, idx in (("ravdess_fold1", rav_test), ("meld_spoken_test", meld_test),
                          ("union", np.concatenate([rav_test, meld_test]))):
            out[name] = scores(data.labels[idx], predict(cell, data, idx).argmax(1))
        out["parameters"] = int(sum(p.numel() for p in cell.parameters()))
        return out

    say("retraining the derived cell from scratch…")
    results = {"searched": {"genotype": genotype.to_dict(), **evaluate(genotype)}}
    rng = np.random.default_rng(cfg.seed + 100)
    results["random"] = []
    for i in range(cfg.random_cells):
        g = random_genotype(cfg.search.cell.nodes, rng)
        say(f"random cell {i + 1}/{cfg.random_cells}…")
        results["random"].append({"genotype": g.to_dict(), **evaluate(g)})
    report = {"config": json.loads(json.dumps(asdict(cfg), default=str)), "search_s": round(search_s, 1),
              "total_s": round(time.time() - t0, 1), "history": history, "results": results,
              "scope": "fold 1 of 5 only; the full evidence table (all folds, >= 5 random cells, MELD text test, "
                       "fixed fusion and concatenation rows) is not computed yet"}
    (cfg.out / "search_report.json").write_text(json.dumps(report, indent=1))
    plot_cell(genotype, cfg.out / "cell.png")
    plot_history(history, cfg.out / "architecture_weights.png")
    return report
