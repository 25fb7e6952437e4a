"""The lake: how enriched rows, dead letters and alerts are stored, committed and read.

The exactly-once commit protocol (`commit.py`), local and object-store storage (`storage.py`),
storage faults and corrupt files (`faults.py`), DuckDB views for readers (`query.py`) and the guard
that keeps `finpulse query` read-only and inside the lake (`sql_guard.py`). May import `schemas`
only: every other package reaches storage through here.
"""
