"""Checked prices into the lake's `prices` Delta table (`finpulse prices load`).

One commit per load, a merge keyed by (company, day): loading the same file twice changes nothing,
and loading a corrected or longer file replaces the days it covers and adds the rest. The table is
not partitioned: ten years of 500 companies is about 1.3 million small rows, one or a few files,
which DuckDB reads faster than thousands of per-day folders.
"""

from __future__ import annotations

from pathlib import Path

from finpulse.pipeline.lake import tables
from finpulse.pipeline.market.prices import PriceFile
from finpulse.schemas.errors import LakeError, UsageError

TABLE = "prices"


class NoLake(UsageError, LakeError):
    """`--lake` names a place that holds no finpulse lake (a usage error: exit 2)."""


def require_lake(lake: str | Path) -> None:
    """Refuse a path without a lake: prices and the signal belong beside a lake's posts."""
    if not tables.exists(lake) and tables.open_table(lake, TABLE) is None:
        raise NoLake(f"no finpulse lake at {lake} (no enriched, deadletter or alerts table there); "
                     "pass the --lake a stream or backfill writes to, e.g. --lake lake")


def load_prices(lake: str | Path, prices: PriceFile) -> dict:
    """Merge the accepted rows into LAKE/prices in one commit; what changed."""
    from deltalake import CommitProperties, write_deltalake

    require_lake(lake)
    props = CommitProperties(max_commit_retries=tables.COMMIT_RETRIES,
                             custom_metadata={"finpulse.op": "prices load", "finpulse.source": prices.source})
    data = prices.table
    dt = tables.open_table(lake, TABLE)
    if dt is None:
        opts = tables.storage_options(lake) or None
        write_deltalake(tables.table_uri(lake, TABLE), data, mode="append", storage_options=opts,
                        commit_properties=props)
        return {"inserted": data.num_rows, "updated": 0, "version": tables.open_table(lake, TABLE).version()}
    metrics = (dt.merge(data, predicate="t.company = s.company AND t.day = s.day", source_alias="s",
                        target_alias="t", merge_schema=True, commit_properties=props)
               .when_matched_update_all().when_not_matched_insert_all().execute())
    return {"inserted": int(metrics.get("num_target_rows_inserted", 0)),
            "updated": int(metrics.get("num_target_rows_updated", 0)), "version": dt.version()}
