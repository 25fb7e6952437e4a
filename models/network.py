"""One shared encoder with one head per task: a single forward pass serves every task.

Span tasks (per-company sentiment) read the same pass's token states for given mentions, so they are
not part of `forward`: the caller passes the hidden states and the mentions' token masks to `span_logits`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from finpulse.models.tasks import TaskKind, TaskSpec


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: nn.Module, tasks: Sequence[TaskSpec], dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        config: Any = encoder.config  # a Hugging Face config (torch types every Module attribute as Tensor | Module)
        hidden = config.hidden_size
        self.tasks = {t.name: t for t in tasks}
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({t.name: _head(t, hidden) for t in tasks})

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def head_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor, task: str) -> torch.Tensor:
        """Sequence tasks read the masked mean of the tokens (as MiniLM was pre-trained); token tasks each token."""
        hidden = self.dropout(hidden)
        if self.tasks[task].kind is TaskKind.SEQUENCE:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.heads[task](pooled)
        return self.heads[task](hidden)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, tasks: Iterable[str] | None = None
    ) -> dict[str, torch.Tensor]:
        hidden = self.encode(input_ids, attention_mask)
        names = list(tasks) if tasks is not None else [n for n, t in self.tasks.items() if t.kind is not TaskKind.SPAN]
        return {name: self.head_logits(hidden, attention_mask, name) for name in names}

    def span_logits(self, task: str, hidden: torch.Tensor, attention_mask: torch.Tensor,
                    span: torch.Tensor) -> torch.Tensor:
        """Logits per mention: row i of hidden/attention_mask is the window holding mention i."""
        return self.heads[task](hidden, attention_mask, span)


def _head(task: TaskSpec, hidden: int) -> nn.Module:
    if task.kind is TaskKind.SPAN:
        from finpulse.models.spans import SpanSentimentHead

        return SpanSentimentHead(hidden, len(task.labels))
    return nn.Linear(hidden, len(task.labels))
