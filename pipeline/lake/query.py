"""DuckDB over the lake: read-only views `enriched`, `deadletter`, `alerts` (empty when no file yet).

`finpulse query` runs arbitrary read-only SQL by design: the connection is in-memory, only
views over the lake's Parquet files exist, and no file outside the lake is written.

An object-store lake (s3://, gs://) is read through pyarrow's filesystems rather than DuckDB's
httpfs extension (which cannot be installed offline): its files are listed once per connection
and registered as a pyarrow dataset, which DuckDB scans lazily with projection pushdown.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from finpulse.pipeline.lake.sql_guard import check_read_only, create_parquet_view, lock_down
from finpulse.pipeline.lake.storage import ObjectStorage, is_remote
from finpulse.schemas.arrow import ALERT_SCHEMA, DEADLETTER_SCHEMA, ENRICHED_SCHEMA

VIEWS: dict[str, pa.Schema] = {"enriched": ENRICHED_SCHEMA, "deadletter": DEADLETTER_SCHEMA, "alerts": ALERT_SCHEMA}


def _empty_select(schema: pa.Schema) -> str:
    con = duckdb.connect()
    con.register("t", pa.Table.from_pylist([], schema=schema))
    cols = con.execute("DESCRIBE t").fetchall()
    con.close()
    return "SELECT " + ", ".join(f"CAST(NULL AS {typ}) AS \"{name}\"" for name, typ, *_ in cols) + " WHERE false"


# Sentiment series: one row per (time bucket, key) with volume, counts per sentiment, negative
# share and mean score. `key_kind` is 'ticker' (a post counts once for each of its tickers),
# 'topic', 'source', 'kind' or 'all'. Rows are deduplicated by id first, so an id that was
# ingested twice (say by a stream and a backfill) counts once.
SERIES_MACRO = """
CREATE OR REPLACE MACRO sentiment_series(bucket_width, key_kind) AS TABLE
WITH posts AS (
    SELECT * FROM enriched QUALIFY row_number() OVER (PARTITION BY id ORDER BY ingested_at) = 1
), keyed AS (
    SELECT published_at, sentiment, sentiment_score,
           unnest(CASE key_kind WHEN 'ticker' THEN tickers WHEN 'topic' THEN [topic]
                                WHEN 'source' THEN [source] WHEN 'kind' THEN [kind] ELSE ['all'] END) AS key
    FROM posts
)
SELECT time_bucket(CAST(bucket_width AS INTERVAL), published_at) AS bucket, key,
       count(*) AS volume,
       count(*) FILTER (WHERE sentiment = 'negative') AS negatives,
       count(*) FILTER (WHERE sentiment = 'neutral') AS neutrals,
       count(*) FILTER (WHERE sentiment = 'positive') AS positives,
       count(*) FILTER (WHERE sentiment = 'negative') / count(*) AS negative_share,
       avg(sentiment_score) AS mean_score
FROM keyed GROUP BY ALL
"""


def connect(lake: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the lake's views and the series macro defined."""
    if is_remote(lake):
        return _connect_object_store(str(lake))
    lake = Path(lake)
    con = duckdb.connect(":memory:")
    for view, schema in VIEWS.items():
        folder = lake / view
        files = list(folder.rglob("*.parquet")) if folder.is_dir() else []
        # hive_partitioning would add `date` from the folder name; rows already carry timestamps.
        # Unreadable files are skipped with a warning (sql_guard); the view is empty if none is left.
        if not files or len(create_parquet_view(con, view, str(folder / "**" / "*.parquet"), files,
                                                "hive_partitioning=false, union_by_name=true")) == len(files):
            con.execute(f"CREATE OR REPLACE VIEW {view} AS {_empty_select(schema)}")
    con.execute(SERIES_MACRO)
    lock_down(con, lake)  # read-only SQL confined to the lake folder from here on
    return con


def _connect_object_store(url: str) -> duckdb.DuckDBPyConnection:
    """The same views over an object-store lake: the files listed now, as pyarrow datasets."""
    import pyarrow.dataset as pads

    storage = ObjectStorage(url)
    con = duckdb.connect(":memory:")
    for view, schema in VIEWS.items():
        files = [storage.full_path(rel) for rel in storage.list(view, ".parquet")]
        if files:
            # the declared schema fills columns that older files lack with nulls
            dataset = pads.dataset(files, schema=schema, format="parquet", filesystem=storage.filesystem)
            con.register(f"_{view}_files", dataset)
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM _{view}_files")
        else:
            con.execute(f"CREATE VIEW {view} AS {_empty_select(schema)}")
    con.execute(SERIES_MACRO)
    return con


def run_query(lake: str | Path, sql: str, params: list | None = None):
    con = connect(lake)
    try:
        check_read_only(con, sql)
        rel = con.sql(sql, params=params) if params else con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    finally:
        con.close()


def format_table(table: pa.Table, max_width: int = 60) -> str:
    """A query result as an aligned text table (`finpulse query`, the demo); long cells are cut with an ellipsis."""
    cols = table.column_names
    rows = [[_cell(v, max_width) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _cell(v, max_width: int) -> str:
    s = "" if v is None else str(v)
    s = s.replace("\n", " ")
    return s if len(s) <= max_width else s[: max_width - 1] + "…"
