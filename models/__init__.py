"""finpulse.models: the Transformer models, one sub-package per concern, layered bottom to top.

| where | what lives there | may import (of ours) |
| --- | --- | --- |
| `tasks.py`, `network.py`, `spans.py`, `data.py`, `encoding.py` | the models' shared vocabulary: the tasks as data, the shared-encoder network, the per-company span head, the labelled-file readers with the one held-out split, labels <-> token ids | `schemas`, each other |
| `artifacts/` | what is on disk and how it loads: the artifact folder, base encoders shipped in packages, the registry, the start-up preflight, LoRA, adapter shrinking | the vocabulary, `schemas` |
| `engine/` | serving: the `Enricher` (texts in, labels out), batch planning, devices, entity decoding, the int8 runtime, the target-marked second pass | `artifacts/`, the vocabulary, `pipeline.runtime.stages` |
| `evaluation/` | held-out scoring, metrics, model cards, behavioural probes | `engine/`, `artifacts/`, the vocabulary |
| `training/` | fine-tuning and head refits, weak supervision, distillation | everything above |

Why layers: the engine is what the pipeline loads on every worker, so it must not drag training code
(or its data readers' side effects) into a stream process; evaluation is shared by training and the
CLI; training sits on top and nothing imports it. `tests/test_layout.py` checks these rules: `models.core`
there means the five vocabulary modules.
"""
