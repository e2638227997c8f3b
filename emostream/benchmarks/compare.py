"""``emostream bench --compare old.json new.json``: every median / p95 / p99 in both, as new / old."""

from __future__ import annotations

import json
from pathlib import Path

KEYS = ("median", "p95", "p99")


def _leaves(node, prefix=""):
    if isinstance(node, dict):
        if any(k in node for k in KEYS) and "n" in node:
            yield prefix, node
            return
        for k, v in node.items():
            if k.startswith("raw"):
                continue
            yield from _leaves(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            label = v.get("streams") if isinstance(v, dict) and "streams" in v else i
            yield from _leaves(v, f"{prefix}[{label}]")


def compare(old_path: Path, new_path: Path) -> list[tuple[str, str, float, float, float]]:
    old = dict(_leaves(json.loads(Path(old_path).read_text())))
    new = dict(_leaves(json.loads(Path(new_path).read_text())))
    rows = []
    for name in new:
        if name in old:
            for k in KEYS:
                a, b = old[name].get(k), new[name].get(k)
                if a and b is not None:
                    rows.append((name, k, a, b, b / a))
    return rows


def print_comparison(old_path: Path, new_path: Path) -> int:
    try:
        rows = compare(old_path, new_path)
    except (OSError, ValueError) as exc:
        print(f"emostream bench: cannot read the results files: {exc}")
        return 2
    if not rows:
        print("no figures in common between the two result files")
        return 1
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  stat    {'old ms':>9}  {'new ms':>9}  new/old")
    for name, k, a, b, r in rows:
        flag = "  slower" if r > 1.1 else ("  faster" if r < 0.9 else "")
        print(f"{name:<{width}}  {k:<6} {a:9.1f}  {b:9.1f}  {r:7.3f}{flag}")
    return 0
