"""Imports run one way: cli -> (sinks, cluster, web, benchmarks) -> (streaming, engine) -> (protocol,
curve, labels). A consumer's client imports only the wire contract. Read from the source, every import
(function-level and TYPE_CHECKING ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import emostream

ROOT = Path(emostream.__file__).parent
WIRE = {"protocol", "curve", "labels"}
CORE = WIRE | {"streaming", "engine"}
OUTER = CORE | {"sinks", "cluster", "web", "benchmarks"}
MAY_IMPORT = {
    **{name: WIRE for name in WIRE},
    "streaming": CORE, "engine": CORE,
    "sinks": OUTER, "cluster": OUTER, "web": OUTER, "benchmarks": OUTER,
    "clients": WIRE | {"clients"},
    "cli": OUTER | {"cli", "clients"},
}


def _room(module: str) -> str:
    """emostream.web.gateway -> web; emostream.protocol -> protocol."""
    return module.split(".")[1]


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("emostream."):
            out.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "emostream":
            out += [f"emostream.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("emostream.")]
    return out


def test_imports_run_one_way():
    against = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        if len(rel.parts) < 2 or rel.parts[1] == "__init__":
            continue
        room = rel.parts[1]
        assert room in MAY_IMPORT, f"{rel}: a room the layering does not know ({room}); add it to MAY_IMPORT"
        against += [f"{'.'.join(rel.parts)} -> {target}" for target in _imports(path)
                    if _room(target) != room and _room(target) not in MAY_IMPORT[room]]
    assert not against, "imports against the direction:\n" + "\n".join(against)
