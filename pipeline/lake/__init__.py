"""The lake: how enriched rows, dead letters and alerts are stored, committed and read.

- `commit.py`: the exactly-once commit protocol (one Delta transaction id per source).
- `tables.py`: the tables, their schemas and the one way to open them.
- `storage.py`: local and object-store storage behind one seam.
- `locks.py`: the waiting writer lock (one alerts writer at a time; the next waits its turn).
- `outbox.py`: append-only record logs beside the tables: alert delivery's notice log and ledgers.
- `faults.py`: storage faults and corrupt files.
- `query.py`: DuckDB views for every reader.
- `sql_guard.py`: keeps `finpulse query` read-only and inside the lake.
- `maintenance.py`: compaction and vacuum.
- `migrate.py`: rewriting older lakes into the current layout.
- `relayout.py`: day-partitioned Delta tables rewritten in place, unpartitioned, one commit each.

Every other package reaches storage through here. May import: `pipeline.runtime`, `schemas`.
"""
