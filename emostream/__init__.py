"""emostream: streaming speech emotion recognition from how it was said (SEC) and what was said (TEC)."""

__version__ = "0.1.0"
