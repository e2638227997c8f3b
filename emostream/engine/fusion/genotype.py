"""A derived fusion cell as data: which operation each kept edge uses, and the pooling. JSON in and out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from emostream.engine.fusion.ops import OPS, POOLINGS

GENOTYPE_VERSION = 1


@dataclass(frozen=True)
class Edge:
    source: int  # 0 = the text input node; k >= 1 = intermediate node k
    op: str


@dataclass(frozen=True)
class Genotype:
    """``nodes[k-1]`` lists the edges into intermediate node k (k = 1..len(nodes))."""

    nodes: tuple[tuple[Edge, ...], ...]
    pooling: str

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("a genotype needs at least one intermediate node")
        for k, edges in enumerate(self.nodes, start=1):
            if not edges:
                raise ValueError(f"node {k} has no incoming edge")
            for e in edges:
                if not 0 <= e.source < k:
                    raise ValueError(f"node {k}: edge from {e.source} must come from an earlier node (0..{k - 1})")
                if e.op not in OPS:
                    raise ValueError(f"node {k}: unknown operation {e.op!r}; known: {', '.join(OPS)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; known: {', '.join(POOLINGS)}")

    def to_dict(self) -> dict:
        return {"version": GENOTYPE_VERSION, "pooling": self.pooling,
                "nodes": [[{"from": e.source, "op": e.op} for e in edges] for edges in self.nodes]}

    @classmethod
    def from_dict(cls, d: dict) -> Genotype:
        if d.get("version") != GENOTYPE_VERSION:
            raise ValueError(f"genotype version {d.get('version')!r} is not {GENOTYPE_VERSION}")
        return cls(tuple(tuple(Edge(int(e["from"]), str(e["op"])) for e in edges) for edges in d["nodes"]),
                   str(d["pooling"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Genotype:
        return cls.from_json(Path(path).read_text())
