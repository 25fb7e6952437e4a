"""Shrink a committed LoRA adapter to a lower rank by truncated SVD, keeping the update's scale.

    finpulse shrink models/sentiment-mpnet --rank 15

Used to keep every committed file under the repository's 5 MiB limit without retraining; re-run
`finpulse eval ... --holdout` and `make cards` afterwards: the figures must come from the shrunk weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from finpulse.models.artifacts.artifact import ADAPTER_FILE, CONFIG_FILE
from finpulse.models.artifacts.lora import reduce_rank


def shrink_adapter(artifact: Path, rank: int) -> None:
    config = json.loads((artifact / CONFIG_FILE).read_text())
    old = config["lora"]["rank"]
    if not 0 < rank < old:
        raise ValueError(f"rank must be between 1 and {old - 1}")
    tensors = load_file(str(artifact / ADAPTER_FILE))
    out = {}
    for name in (n[: -len(".lora_A")] for n in tensors if n.endswith(".lora_A")):
        out[name + ".lora_A"], out[name + ".lora_B"] = reduce_rank(tensors[name + ".lora_A"], tensors[name + ".lora_B"], rank)
    save_file({k: v.contiguous() for k, v in out.items()}, str(artifact / ADAPTER_FILE))
    config["lora"]["alpha"] = config["lora"]["alpha"] * rank / old  # scale = alpha / rank is unchanged
    config["lora"]["rank"] = rank
    config["training"]["shrunk"] = f"trained at LoRA rank {old}, reduced to rank {rank} by truncated SVD of each update"
    (artifact / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
