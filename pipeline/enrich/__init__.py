"""Enrichment: raw message -> validated input record -> model predictions -> enriched row.

- `parse.py` (pure): raw bytes into an `InputRecord` or a `DeadLetter`.
- `handler.py`: the Beam `ModelHandler` over the engine (`models.engine`).
- `rows.py` (pure): enriched rows as one Arrow table per bundle, invariants checked column-wise.
- `companies.py` (pure): company linking through the gazetteer in `reference/` (generated).
- `per_company.py` (pure): per-company sentiment columns from the engine's spans.
- `tickers.py` (pure): cashtag extraction.
- `stories.py` (pure): near-duplicate story assignment (the stateful Beam step is `jobs/transforms.py`).

Everything here but the handler is testable without Beam or Kafka; never imports `lake`, `sources`
or `jobs`. May import: `pipeline.messages`, `pipeline.runtime`, `models.engine`, `models.artifacts`,
`models.core`, `schemas`.
"""
