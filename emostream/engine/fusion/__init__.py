"""Fusion of the two perspectives.

``fixed``: the engine's trust-gated fusion over pooled branch outputs (the shipped default).
``ops``/``cell``/``genotype``: the MFSN search space — a small DAG cell whose edges choose how
speech cues adjust the text's token sequence (issue 6). Training and search code live in
``engine/training``, never imported at inference.
"""

from emostream.engine.fusion.fixed import FusionClassifier, FusionConfig

__all__ = ["FusionClassifier", "FusionConfig"]
