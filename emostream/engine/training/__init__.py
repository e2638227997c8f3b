"""Training and evaluation. Never imported by the inference path."""
