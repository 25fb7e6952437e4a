"""finpulse.pipeline.market: prices beside sentiment, and whether the signal means anything.

- `prices.py`: a user's daily price file (CSV or Parquet) read, validated and keyed to company keys
  through the gazetteer (FB and META are one company); every rejected row is kept in a report. Pure.
- `load.py`: those rows merged into the lake's `prices` Delta table, keyed by (company, day).
- `sessions.py`: which trading session a post counts for (16:00 America/New_York close, weekends and
  holidays roll to the next day of the price calendar); the rule in Python and in the SQL the study runs.
- `stats.py`: the statistics on small per-day matrices (numpy only): cross-sectional Spearman
  information coefficient by horizon with its t-statistic, event-study windows and curves. Pure.
- `study.py`: `finpulse signal`: DuckDB over the lake's views (lake/query.py) aggregates posts into
  per-company sessions and prices into abnormal returns; `stats` does the rest.

Never the alerts package: the alert detector's alternatives are compared by
`devtools/signal_choice.py`, which imports both. The gazetteer comes from `enrich/companies.py`.
May import: `pipeline.lake`, `pipeline.enrich.companies`, `schemas`.
"""
