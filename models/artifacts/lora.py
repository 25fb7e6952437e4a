"""Minimal LoRA: low-rank updates on the encoder's linear layers, merged away for inference.

Kept in-house (about 60 lines) instead of a dependency: we need only inject, extract and
merge, and merging means inference runs a plain encoder with zero LoRA overhead.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

# The linear layers inside the transformer blocks (attention q/k/v/out and the MLP), under
# BERT-family names (attention.self.query, attention.output.dense) and MPNet's (attention.attn.q/o).
DEFAULT_TARGETS = (r"encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
                   r"|attention\.attn\.(q|k|v|o)|intermediate\.dense|output\.dense)$")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T
        return self.base(x) + update * self.scale

    def merged(self) -> nn.Linear:
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            delta = (self.lora_B.float() @ self.lora_A.float()) * self.scale
            out.weight.copy_(self.base.weight.float() + delta)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out.to(self.base.weight.dtype)


def _set_child(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def add_lora(model: nn.Module, rank: int, alpha: float, dropout: float = 0.0, targets: str = DEFAULT_TARGETS) -> list[str]:
    """Wrap every nn.Linear whose name matches `targets`; returns the wrapped names."""
    pattern = re.compile(targets)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and pattern.search(n)}
    if not layers:
        raise ValueError(f"no linear layer matches the LoRA target pattern {targets!r}")
    for name, layer in layers.items():
        _set_child(model, name, LoRALinear(layer, rank, alpha, dropout))
    return list(layers)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if n.endswith(("lora_A", "lora_B"))}


def merge_lora(model: nn.Module) -> None:
    """Replace each LoRALinear by one dense nn.Linear holding W + scale * B @ A."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            _set_child(model, name, module.merged())


def reduce_rank(a: torch.Tensor, b: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best rank-`rank` factors (A', B') of the update B @ A (truncated SVD; Eckart-Young).

    Lets a trained adapter be made smaller without retraining: the dropped part of each update is
    exactly its smallest singular values, and the effect on quality is measured by re-evaluating.
    """
    u, s, vh = torch.linalg.svd(b.float() @ a.float(), full_matrices=False)
    root = s[:rank].sqrt()
    return (root[:, None] * vh[:rank]).to(a.dtype), (u[:, :rank] * root).to(b.dtype)
