"""The common label set and how each corpus maps onto it.

Valence/arousal prototypes place each category on Russell's circumplex; neither corpus has
dimensional annotations, so the V/A head is trained on these derived targets (see the model card).
"""

from __future__ import annotations

LABELS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}

# (valence, arousal) per label, in [-1, 1].
VA_PROTOTYPES: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.5),
    "angry": (-0.6, 0.8),
    "fearful": (-0.6, 0.6),
    "disgusted": (-0.7, 0.3),
    "surprised": (0.3, 0.8),
}

# RAVDESS file-name emotion code -> common label (calm folds into neutral).
RAVDESS_EMOTIONS: dict[str, str] = {
    "01": "neutral", "02": "neutral", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgusted", "08": "surprised",
}

MELD_EMOTIONS: dict[str, str] = {
    "neutral": "neutral", "joy": "happy", "sadness": "sad", "anger": "angry",
    "fear": "fearful", "disgust": "disgusted", "surprise": "surprised",
}
