"""Enrichment: raw message -> validated input record -> model predictions -> enriched row.

Parsing into `InputRecord` or `DeadLetter` (`parse.py`, pure), the Beam `ModelHandler` over the
shared-encoder engine (`handler.py`), enriched rows as one Arrow table per bundle with the
schema's invariants checked column-wise (`rows.py`, pure), company linking through the gazetteer
(`companies.py`, pure; the gazetteer in `reference/` is generated), cashtag extraction
(`tickers.py`, pure) and near-duplicate story assignment (`stories.py`, pure; the stateful Beam
step around it is `jobs/transforms.py` WriteToLake). Everything here but the handler
is testable without Beam or Kafka. May import `messages`, `models` and `schemas`; never `lake`,
`sources` or `jobs`.
"""
