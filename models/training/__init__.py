"""Training: fine-tuning, head refits and per-company heads; the top layer, imported by nothing but the CLI.

- `train`: one loop for one task or several on a shared encoder (LoRA or full), with distillation.
- `entity_train`: the per-company span head on a frozen encoder.
- `head_refit`: refitting the sentiment head on the frozen encoder.
- `labelling`: weak supervision, labelling functions measured for precision on a dev split.
- `soft_labels`: teacher soft labels over every real text, resumable (`finpulse distill label`).
- `distill_refit`: the sentiment head refit on teacher soft labels and labelling-function labels.

May import: `models.evaluation`, `models.engine`, `models.artifacts`, `models.core`, `pipeline.runtime`, `schemas`.
"""
