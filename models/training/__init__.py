"""Training: fine-tuning, head refits and per-company heads; the top layer, imported by nothing but the CLI.

- `train`: one loop for one task or several on a shared encoder (LoRA or full), with distillation.
- `entity_train`: the per-company span head on a frozen encoder.
- `head_refit`: refitting the sentiment head on the frozen encoder.

May import: `models.evaluation`, `models.engine`, `models.artifacts`, `models.core`, `pipeline.runtime`, `schemas`.
"""
