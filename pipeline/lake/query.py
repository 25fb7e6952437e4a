"""DuckDB over the lake: read-only views `enriched`, `deadletter`, `alerts`, `prices` (empty when no table yet).

`finpulse query` runs arbitrary read-only SQL by design: the connection is in-memory, only
views over the lake's Parquet files exist, and no file outside the lake is written.

Each view reads the files of one Delta table version, as listed by the table's log (tables.py):
locally with DuckDB's `read_parquet` over that list (DuckDB's delta extension cannot be
installed offline), on an object store (s3://, gs://) as a pyarrow dataset over the same list,
which DuckDB scans lazily with projection pushdown (DuckDB's httpfs is not installable either).
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb
import pyarrow as pa

from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.sql_guard import check_read_only, create_parquet_view, lock_down
from finpulse.pipeline.lake.storage import is_remote
from finpulse.schemas.arrow import ALERT_SCHEMA, DEADLETTER_SCHEMA, ENRICHED_SCHEMA, PRICES_SCHEMA

VIEWS: dict[str, pa.Schema] = {"enriched": ENRICHED_SCHEMA, "deadletter": DEADLETTER_SCHEMA, "alerts": ALERT_SCHEMA,
                               "prices": PRICES_SCHEMA}  # prices: `finpulse prices load` (pipeline/market/)


@functools.cache
def _duck_types(schema: pa.Schema) -> tuple[tuple[str, str], ...]:
    """(column, DuckDB type) of a schema, in order."""
    con = duckdb.connect()
    con.register("t", pa.Table.from_pylist([], schema=schema))
    cols = con.execute("DESCRIBE t").fetchall()
    con.close()
    return tuple((name, typ) for name, typ, *_ in cols)


def _empty_select(schema: pa.Schema) -> str:
    cols = ", ".join(f"CAST(NULL AS {typ}) AS \"{name}\"" for name, typ in _duck_types(schema))
    return f"SELECT {cols} WHERE false"


def _complete_view(con: duckdb.DuckDBPyConnection, view: str, raw: str, schema: pa.Schema) -> None:
    """`view` over `raw` with every column of the schema: a column that no file has yet (files
    written before it was added) reads as NULL, so old lakes load without a rewrite."""
    present = {r[0] for r in con.execute(f"DESCRIBE {raw}").fetchall()}
    wanted = _duck_types(schema)
    cols = [f'"{n}"' if n in present else f'CAST(NULL AS {t}) AS "{n}"' for n, t in wanted]
    cols += [f'"{n}"' for n in sorted(present - {n for n, _ in wanted})]  # columns newer than this code
    select = f"SELECT {', '.join(cols)} FROM {raw}"
    if view == "alerts":  # one row per alert: an escalation rewrites the alert with a higher revision
        select += (" QUALIFY row_number() OVER (PARTITION BY alert_id "
                   "ORDER BY coalesce(revision, 0) DESC, created_at DESC) = 1")
    con.execute(f"CREATE OR REPLACE VIEW {view} AS {select}")


def company_rows(source: str, keys: str = "tickers") -> str:
    """SQL: one row per (post, key) of `source` (rows of the enriched shape; `keys` the list expression to
    unnest: `tickers`, or `coalesce(companies, tickers)` for company keys), with the company's own
    sentiment where the text mentions it (`entity_sentiment`) and the post's where it does not (a ticker
    given only in the input record, or a row written before per-company sentiment).

    `sentiment`, `sentiment_score` become the company's; `relevance` is the mention's (1.0 for the
    fallback); `post_sentiment`, `post_sentiment_score` keep the post's; `sentiment_origin` says which
    ('mention' or 'post'); the key is in column `ticker`. Every other column of `source` passes through.
    An element matches a key when its `ticker` (the company key the linker gives, the main ticker) equals
    it: a post's other share-class or old tickers ("FB") fall back to the post's sentiment under 'ticker'
    and find the element under 'company' keys."""
    return f"""(
    SELECT * EXCLUDE (_m, sentiment, sentiment_score),
           coalesce(_m.sentiment, sentiment) AS sentiment,
           coalesce(_m.score, sentiment_score) AS sentiment_score,
           coalesce(_m.relevance, 1.0) AS relevance,
           CASE WHEN _m IS NULL THEN 'post' ELSE 'mention' END AS sentiment_origin,
           sentiment AS post_sentiment, sentiment_score AS post_sentiment_score
    FROM (SELECT *, (list_filter(entity_sentiment, lambda x: x.ticker = ticker))[1] AS _m
          FROM (SELECT *, unnest({keys}) AS ticker FROM {source})))"""


# Sentiment series: one row per (time bucket, key) with volume, counts per sentiment, negative
# share and mean score. `key_kind` is 'company' (a post counts once for each company key it
# names; rows written before company keys existed fall back to their tickers), 'ticker',
# 'topic', 'source', 'kind' or 'all'. Rows are deduplicated by id first, so an id that was
# ingested twice (say by a stream and a backfill) counts once.
#
# For 'company' and 'ticker' keys a post counts with that company's own sentiment where the text
# mentions it (`entity_sentiment`, see company_rows) and with the post's sentiment where it does
# not; counts stay whole posts/stories (the alert test is binomial over them) and `mean_score` is
# relevance-weighted (a passing mention moves a company's mean less than a post about it). Other
# key kinds use the post's sentiment with weight 1.
#
# `unit` says what volume and the sentiment counts count: 'story' (the default) counts each
# near-duplicate story once per key, in the bucket of its first post for that key and with that
# post's sentiment, so retweets and syndicated copies add to buzz (`posts`) but not to evidence;
# 'post' counts every row (the behaviour before story de-duplication). Rows without a story_id
# (older files) are their own story. `posts` always counts every row, `stories` = volume.
SERIES_MACRO = f"""
CREATE OR REPLACE MACRO sentiment_series(bucket_width, key_kind, unit := 'story') AS TABLE
WITH posts AS (
    SELECT * FROM enriched QUALIFY row_number() OVER (PARTITION BY id ORDER BY ingested_at) = 1
), keyed AS (
    SELECT id, published_at, sentiment, sentiment_score, 1.0 AS weight, coalesce(story_id, id) AS story,
           unnest(CASE key_kind WHEN 'company' THEN [] WHEN 'ticker' THEN []
                                WHEN 'topic' THEN [topic] WHEN 'source' THEN [source] WHEN 'kind' THEN [kind]
                                ELSE ['all'] END) AS key
    FROM posts
    UNION ALL
    SELECT id, published_at, sentiment, sentiment_score, relevance, coalesce(story_id, id), ticker
    FROM {company_rows("(SELECT * FROM posts WHERE key_kind = 'company')", "coalesce(companies, tickers)")}
    UNION ALL
    SELECT id, published_at, sentiment, sentiment_score, relevance, coalesce(story_id, id), ticker
    FROM {company_rows("(SELECT * FROM posts WHERE key_kind = 'ticker')", "tickers")}
), counted AS (
    SELECT *, unit = 'post' OR row_number() OVER (PARTITION BY key, story ORDER BY published_at, id) = 1 AS counts
    FROM keyed
)
SELECT time_bucket(CAST(bucket_width AS INTERVAL), published_at) AS bucket, key,
       count(*) FILTER (WHERE counts) AS volume,
       count(*) FILTER (WHERE counts AND sentiment = 'negative') AS negatives,
       count(*) FILTER (WHERE counts AND sentiment = 'neutral') AS neutrals,
       count(*) FILTER (WHERE counts AND sentiment = 'positive') AS positives,
       count(*) FILTER (WHERE counts AND sentiment = 'negative')
           / greatest(count(*) FILTER (WHERE counts), 1) AS negative_share,
       sum(sentiment_score * weight) FILTER (WHERE counts)
           / sum(weight) FILTER (WHERE counts) AS mean_score,
       count(*) AS posts
FROM counted GROUP BY ALL
"""


def connect(lake: str | Path, as_of: tables.AsOf = None,
            model_version: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the lake's views and the series macro defined.

    Each view reads exactly the files of its Delta table's latest version (or as of `as_of`: a time,
    or one table's version and the others as they were at its commit; tables.resolve_as_of), listed
    once from the table log (lake/tables.py).
    `enriched_versions` holds every model version's row of an id; `enriched` one row per id and
    model: the newest model's (the one ingested last) unless `model_version` picks one.
    """
    at = tables.resolve_as_of(lake, as_of, list(VIEWS))
    con = duckdb.connect(":memory:")
    for name, schema in VIEWS.items():
        snap = tables.snapshot(lake, name, at[name])
        raw = f"_{name}_raw"
        if is_remote(lake):
            if snap.files:
                con.register(f"_{name}_files", tables.arrow_dataset(lake, snap))
                con.execute(f"CREATE VIEW {raw} AS SELECT * FROM _{name}_files")
            else:
                con.execute(f"CREATE VIEW {raw} AS {_empty_select(schema)}")
        else:
            files = [Path(f) for f in snap.files]
            # hive_partitioning would add `date` from the folder name; rows already carry timestamps.
            # Unreadable files are skipped with a warning (sql_guard); the view is empty if none is left.
            options = "hive_partitioning=false, union_by_name=true"
            if not files or len(create_parquet_view(con, raw, files, options)) == len(files):
                con.execute(f"CREATE OR REPLACE VIEW {raw} AS {_empty_select(schema)}")
        _complete_view(con, "enriched_versions" if name == "enriched" else name, raw, schema)
        if name == "enriched":
            _model_view(con, snap.rescored, model_version)
    con.execute(SERIES_MACRO)
    if not is_remote(lake):
        lock_down(con, lake)  # read-only SQL confined to the lake folder from here on
    return con


def _model_view(con: duckdb.DuckDBPyConnection, rescored: bool, model_version: str | None) -> None:
    """`enriched` over `enriched_versions`: one model version per id (a plain pass-through until
    the first rescore, so an ordinary lake pays nothing for it)."""
    if model_version is not None:
        con.execute("CREATE VIEW enriched AS SELECT * FROM enriched_versions WHERE model_version = "
                    + "'" + model_version.replace("'", "''") + "'")
    elif rescored:
        con.execute("""CREATE VIEW enriched AS SELECT * FROM enriched_versions
                       QUALIFY model_version = arg_max(model_version, ingested_at) OVER (PARTITION BY id)""")
    else:
        con.execute("CREATE VIEW enriched AS SELECT * FROM enriched_versions")


def run_query(lake: str | Path, sql: str, params: list | None = None, as_of: tables.AsOf = None,
              model_version: str | None = None):
    con = connect(lake, as_of, model_version)
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
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _cell(v, max_width: int) -> str:
    s = "" if v is None else str(v)
    s = s.replace("\n", " ")
    return s if len(s) <= max_width else s[: max_width - 1] + "…"
