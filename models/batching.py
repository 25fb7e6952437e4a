"""Length-aware batch planning: fill each batch up to a padded-token budget, not a fixed count.

Post lengths vary a lot (8 to 200+ words); padding a batch to its longest member wastes most
of the compute when lengths are mixed. Sorting by length and cutting by padded tokens keeps
padding low and batches large where texts are short.
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[int], token_budget: int, max_batch: int) -> list[list[int]]:
    """Indices grouped so that len(batch) * max(len in batch) <= token_budget (a single long item may exceed it)."""
    if token_budget <= 0 or max_batch <= 0:
        raise ValueError("token_budget and max_batch must be positive")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # ascending order: the newcomer is the longest so far
        if current and ((len(current) + 1) * longest > token_budget or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
