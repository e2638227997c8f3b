"""Study: intra-op threads × pipeline workers × batch size, for real-time streams on this machine.

One process, the shipped models, the bench's real-time streams (``benchmarks.streams.run_streams``:
N espeak-ng dialogues played at real-time pace into one pipeline, partials on as ``listen`` runs).
For each combination the models are loaded once:

- threads: CTranslate2's intra-op threads per ASR call (``listen --threads``); SEC and text get half
  (at least one), as ``listen`` splits them;
- workers: pipeline workers, each recognizing its own take, with one ASR replica each
  (``ASRConfig.parallel``: one copy of the weights);
- batch: 1 (one at a time) or the default adaptive policy (batches of up to 8 once 4 finals wait).

Reported per row: finals published / utterances, dropped, p95 queue wait, median and p95 VAD close →
published, partials published / stretched / skipped, and whether it keeps up (``KEEP_UP_RULE``).

    python experiments/threads_workers_batch.py --out runs/threads_workers_batch
    python experiments/threads_workers_batch.py --streams 8 16 --threads 1 2 --workers 1 2
    python experiments/threads_workers_batch.py --threads 1 --workers 2 --streams 1 8 16 --repeats 2

Writes ``results.json`` and ``table.md`` into ``--out``. Takes about 45 s per row on 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from pathlib import Path

from emostream.benchmarks.runner import machine_info
from emostream.benchmarks.streams import KEEP_UP_RULE, run_streams


def row_text(r: dict) -> str:
    lat = r["latency_ms"].get("vad_close_to_publish", {})
    u = r["utterances"]
    return (f"| {r['threads']} | {r['workers']} | {r['batch']} | {r['streams']} | {u['published']}/{u['utterances']} "
            f"| {u['dropped']} | {r['latency_ms'].get('queue_wait', {}).get('p95', float('nan')):.0f} "
            f"| {lat.get('median', float('nan')):.0f} | {lat.get('p95', float('nan')):.0f} "
            f"| {u['partials']} / {u['partials_stretched']} / {u['partials_skipped']} "
            f"| {'yes' if r['keeps_up'] else 'no'} |")


HEADER = ("| threads | workers | batch | streams | finals | dropped | p95 queue wait ms | median ms | p95 ms "
          "| partials published / stretched / skipped | keeps up |\n|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/threads_workers_batch"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", nargs="+", default=["1", "default"],
                    help="batch sizes; 'default' = the adaptive default")
    ap.add_argument("--streams", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--sentences", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each row (they vary run to run)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from emostream.engine.asr import ASRConfig
    from emostream.engine.recognizer import Recognizer

    args.out.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.monotonic()
    for threads, workers in itertools.product(args.threads, args.workers):
        recognizer = Recognizer(asr=ASRConfig(cpu_threads=threads, parallel=workers),
                                torch_threads=max(1, threads // 2))
        recognizer.warm_up()
        try:
            for _, batch, streams in itertools.product(range(args.repeats), args.batch, args.streams):
                size = None if batch == "default" else int(batch)
                r = run_streams(recognizer, streams, args.sentences, "tcp://127.0.0.1:*", workers=workers,
                                batch_size=size)
                r.pop("raw_vad_close_to_publish_ms", None)
                r.update(threads=threads, batch=batch)
                rows.append(r)
                print(row_text(r), flush=True)
        finally:
            recognizer.close()
    results = {"study": "threads x workers x batch", "machine": machine_info(), "keep_up_rule": KEEP_UP_RULE,
               "sentences_per_stream": args.sentences, "wall_s": round(time.monotonic() - t0, 1), "rows": rows}
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "table.md").write_text(HEADER + "\n" + "\n".join(row_text(r) for r in rows) + "\n")
    print(f"wrote {args.out / 'results.json'}, {args.out / 'table.md'} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
