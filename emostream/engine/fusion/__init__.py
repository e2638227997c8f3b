"""Fusion of the two perspectives.

``fixed``: the engine's trust-gated fusion over pooled branch outputs (the shipped default).
``ops``/``cell``/``genotype``: the MFSN search space — a small DAG cell whose edges choose how
speech cues adjust the text's token sequence; ``searched``: the cell ``emostream search`` found,
saved/loaded/exported to ONNX (``--fusion searched``). Training and search code live in
``engine/training``, never imported at inference.
"""

from emostream.engine.fusion.fixed import FusionClassifier, FusionConfig

__all__ = ["FusionClassifier", "FusionConfig"]
