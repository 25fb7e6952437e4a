"""Enrichment: raw message -> validated input record -> model predictions -> enriched row.

Parsing into `InputRecord` or `DeadLetter` (`parse.py`, pure), the Beam `ModelHandler` over the
shared-encoder engine and row building (`handler.py`), company linking through the gazetteer
(`companies.py`, pure; the gazetteer in `reference/` is generated), cashtag extraction
(`tickers.py`, pure) and near-duplicate story assignment (`stories.py`, pure; the stateful Beam
step around it is `jobs/transforms.py` AssignStories). Everything here but the handler
is testable without Beam or Kafka. May import `messages`, `models` and `schemas`; never `lake`,
`sources` or `jobs`.
"""
