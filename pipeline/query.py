"""DuckDB over the lake: read-only views `enriched`, `deadletter`, `alerts` (empty when no file yet).

`finpulse query` runs arbitrary read-only SQL by design: the connection is in-memory, only
views over the lake's Parquet files exist, and no file outside the lake is written.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from finpulse.schemas.arrow import DEADLETTER_SCHEMA, ENRICHED_SCHEMA

VIEWS: dict[str, pa.Schema | None] = {"enriched": ENRICHED_SCHEMA, "deadletter": DEADLETTER_SCHEMA, "alerts": None}


def _empty_select(schema: pa.Schema) -> str:
    con = duckdb.connect()
    con.register("t", pa.Table.from_pylist([], schema=schema))
    cols = con.execute("DESCRIBE t").fetchall()
    con.close()
    return "SELECT " + ", ".join(f"CAST(NULL AS {typ}) AS \"{name}\"" for name, typ, *_ in cols) + " WHERE false"


def connect(lake: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the lake's views defined."""
    lake = Path(lake)
    con = duckdb.connect(":memory:")
    for view, schema in VIEWS.items():
        folder = lake / view
        files = list(folder.rglob("*.parquet")) if folder.is_dir() else []
        if files:
            glob = str(folder / "**" / "*.parquet").replace("'", "''")
            # hive_partitioning would add `date` from the folder name; rows already carry timestamps.
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{glob}', hive_partitioning=false, union_by_name=true)")
        elif schema is not None:
            con.execute(f"CREATE VIEW {view} AS {_empty_select(schema)}")
        else:
            con.execute(f"CREATE VIEW {view} AS SELECT NULL::VARCHAR AS key WHERE false")
    return con


def run_query(lake: str | Path, sql: str, params: list | None = None):
    con = connect(lake)
    try:
        rel = con.sql(sql, params=params) if params else con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    finally:
        con.close()
