"""finpulse.models: the Transformer models, one sub-package per concern, layered bottom to top.

- the vocabulary, `tasks.py`, `network.py`, `spans.py`, `data.py`, `encoding.py`: the tasks as data,
  the shared-encoder network, the per-company span head, the labelled-file readers with the one
  held-out split, labels <-> token ids. May import `schemas` and each other (`models.core` below).
- `artifacts/`: what is on disk and how it loads (artifact folder, shipped base encoders, registry,
  preflight, LoRA, adapter shrinking).
- `engine/`: serving, the `Enricher` (texts in, labels out), batch planning, devices, entity
  decoding, the int8 runtime, the target-marked second pass.
- `evaluation/`: held-out scoring, metrics, model cards, behavioural probes.
- `training/`: fine-tuning, head refits, weak supervision, distillation.

Each sub-package's docstring says what it may import: artifacts < engine < evaluation < training.

Why layers: the engine is what the pipeline loads on every worker, so it must not drag training code
(or its data readers' side effects) into a stream process; evaluation is shared by training and the
CLI; training sits on top and nothing imports it. `tests/test_layout.py` checks these rules: `models.core`
there means the five vocabulary modules.
"""
