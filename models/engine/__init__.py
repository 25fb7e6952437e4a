"""Serving the models: texts in, sentiment + topic + entities + per-company sentiment out.

- `inference`: the `Enricher`, the engine the pipeline's model handler calls.
- `batching`: length-aware batch planning under a padded-token budget.
- `device`: where tensors go and how big a batch may be there.
- `entities`: token IOB2 predictions -> character-span entities.
- `int8`: the int8 CPU runtime (ONNX Runtime encoders, torch heads).
- `targets`: the target-marked second pass for texts that name several companies.

May import: `models.artifacts`, `models.core`, `pipeline.runtime`, `schemas`.
"""
