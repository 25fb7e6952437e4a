"""Where tensors go and how big a batch may be there: the GPU-specific parts of inference.

On CUDA, host-to-device copies come from pinned (page-locked) memory and are issued
non-blocking, so the copy of one batch overlaps the kernels still running for the previous
one; and the padded-token budget per forward pass is sized from the memory actually free on the
device rather than fixed, so a large GPU gets large batches and a shared one does not run out.
On CPU both are no-ops and the configured budget stands.
"""

from __future__ import annotations

import torch

# Beyond this many padded tokens per pass a GPU is saturated for a 6-layer encoder: bigger
# batches only add latency. Below the floor a pass is launch-bound.
GPU_BUDGET_CAP = 131_072
GPU_BUDGET_FLOOR = 2_048


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a freshly built host tensor to `device` (pinned + non-blocking on CUDA)."""
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def activation_bytes_per_token(hidden: int, intermediate: int, heads: int, max_length: int, dtype_bytes: int) -> int:
    """Peak activation bytes one padded token costs in an inference forward pass.

    Layers run one after another with no autograd graph, so the peak is about one layer's live
    tensors per token: hidden state in and out, q/k/v, attention output (6 x hidden), the MLP's
    intermediate before and after GELU (2 x intermediate) and a row of attention scores per head
    (heads x max_length, when the fused kernel is not used). Doubled for allocator slack.
    """
    return 2 * dtype_bytes * (6 * hidden + 2 * intermediate + heads * max_length)


def token_budget_for_memory(free_bytes: int, per_token: int, fraction: float = 0.5,
                            floor: int = GPU_BUDGET_FLOOR, cap: int = GPU_BUDGET_CAP) -> int:
    """Padded tokens per pass that fit in `fraction` of the free memory, within [floor, cap]."""
    if per_token <= 0:
        raise ValueError("per_token must be positive")
    return int(max(floor, min(cap, (free_bytes * fraction) // per_token)))


def gpu_token_budget(encoder_config, device: torch.device, max_length: int, bf16: bool) -> int:
    """Budget for this device from its free memory right now (after the weights are loaded)."""
    free, _total = torch.cuda.mem_get_info(device)
    per_token = activation_bytes_per_token(encoder_config.hidden_size, encoder_config.intermediate_size,
                                           encoder_config.num_attention_heads, max_length, 2 if bf16 else 4)
    return token_budget_for_memory(free, per_token)
