"""The searched fusion cell as a shippable artifact: genotype + config + weights, and its ONNX graph.

Files: ``<stem>.json`` (format, genotype, cell config, how it was chosen and its evidence) and
``<stem>.safetensors`` (fp32 weights; the cell is ~0.1 M parameters). ``emostream search`` writes
them; ``--fusion searched`` (or a path) loads them.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from emostream.engine.fusion.cell import CellConfig, FusionCell
from emostream.engine.fusion.genotype import Genotype

log = logging.getLogger(__name__)

FORMAT = "emostream-fusion-cell/1"
SEARCHED_CELL = Path(__file__).resolve().parents[2] / "weights" / "fusion-searched"
BUNDLE_PARTS_READ = ("sec", "text", "text_head")  # a cell is trained on these parts' outputs (Bundle.digest)
ONNX_INPUTS = ("speech", "speech_mask", "text", "text_mask", "asr_confidence", "sec_logits", "text_logits")


class CellFileError(RuntimeError):
    pass


def save_cell(cell: FusionCell, stem: Path, info: dict | None = None) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in cell.state_dict().items()}, str(stem.with_suffix(".safetensors")),
              metadata={"format": FORMAT})
    manifest = {"format": FORMAT, "genotype": cell.genotype.to_dict(), "cell": asdict(cell.cfg), **(info or {})}
    stem.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")


def load_cell(stem: str | Path | None = None) -> tuple[FusionCell, dict]:
    """The cell (eval mode) and its manifest."""
    stem = Path(stem or SEARCHED_CELL).with_suffix("")
    manifest_path, weights_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    if not manifest_path.is_file() or not weights_path.is_file():
        raise CellFileError(f"no searched fusion cell at {stem} (need {manifest_path.name} and {weights_path.name}); "
                            "`emostream search` writes one")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise CellFileError(f"{manifest_path}: unsupported format {manifest.get('format')!r} (want {FORMAT})")
    cell = FusionCell(CellConfig(**manifest["cell"]), Genotype.from_dict(manifest["genotype"]))
    cell.load_state_dict(load_file(str(weights_path)))
    return cell.eval(), manifest


def export_cell_onnx(cell: FusionCell, path: str | Path, example: tuple[torch.Tensor, ...]) -> Path:
    """Inputs as ONNX_INPUTS, batch and both sequence lengths dynamic (text length may be 0);
    outputs ``logits`` and ``va``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {"speech": {0: "batch", 1: "frames"}, "speech_mask": {0: "batch", 1: "frames"},
            "text": {0: "batch", 1: "tokens"}, "text_mask": {0: "batch", 1: "tokens"},
            "asr_confidence": {0: "batch"}, "sec_logits": {0: "batch"}, "text_logits": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on constant folding; parity is tested
        torch.onnx.export(cell.eval(), example, str(path), input_names=list(ONNX_INPUTS), output_names=["logits", "va"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    log.info("exported the fusion cell to %s", path)
    return path
