"""The dashboard's view of the lake: an in-memory DuckDB copy, loaded incrementally.

The store follows the Delta tables' versions (through lake/tables.py, locally or on s3:// /
gs://): on refresh it lists the files of each table's newest version and loads only the files it
has not read. Data files never change once committed. A compaction replaces many files by one
holding the same rows: that file is new to the store, and loading it inserts nothing because
rows are keyed (posts by id, alerts by alert_id) and only unseen keys are inserted, so compaction
neither double-counts nor drops rows. Dead letters are only counted: from the log's per-file row
counts, never from the files. Every query
then runs against in-memory tables instead of re-scanning thousands of small Parquet files,
and results are cached under the store's *version*, which moves only when a new file was
loaded: an idle lake costs nothing per rerun, and a live one recomputes only on change.

Duplicated ids (a record both streamed and backfilled) are kept once, the first ingested.
A file DuckDB cannot read (truncated, corrupt) is skipped and reported, never fatal.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.storage import is_remote
from finpulse.schemas.arrow import ALERT_SCHEMA, ENRICHED_SCHEMA

CACHE_SIZE = 256


@dataclass
class LakeStatus:
    exists: bool
    posts: int = 0
    dead_letters: int = 0
    alerts: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    newest_ingested: datetime | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why it could not be read


class LakeStore:
    def __init__(self, root: str | Path, min_refresh_s: float = 1.0) -> None:
        self._remote = is_remote(root)
        self.root: str | Path = str(root) if self._remote else Path(root)
        self.min_refresh_s = min_refresh_s
        self.version = 0
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        for table, schema in (("posts", ENRICHED_SCHEMA), ("alerts", ALERT_SCHEMA)):
            self._con.register("_empty", pa.Table.from_pylist([], schema=schema))
            self._con.execute(f"CREATE TABLE {table} AS SELECT * FROM _empty")
            self._con.unregister("_empty")
        self._dead_letters = 0
        self._seen: set[str] = set()  # data files loaded (a table version's files, by URI)
        self._versions: dict[str, int] = {}  # table -> the version loaded
        self._skipped: dict[str, str] = {}
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
        self._last_refresh = 0.0

    # -- loading ------------------------------------------------------------------------------
    def _snapshot(self, table: str) -> tables.TableFiles:
        return tables.snapshot(self.root, table)

    def refresh(self, force: bool = False) -> bool:
        """Load files committed since the last call; True when anything new was loaded."""
        if not force and time.monotonic() - self._last_refresh < self.min_refresh_s:
            return False
        with self._lock:
            self._last_refresh = time.monotonic()
            changed = False
            for table in ("enriched", "deadletter", "alerts"):
                snap = self._snapshot(table)
                if snap.version is None or snap.version == self._versions.get(table):
                    continue
                self._versions[table] = snap.version
                if table == "deadletter":
                    dt = tables.open_table(self.root, table, snap.version)
                    adds = pa.table(dt.get_add_actions(flatten=True)) if dt else None
                    count = sum(adds.column("num_records").to_pylist()) if adds is not None else 0
                    changed |= count != self._dead_letters
                    self._dead_letters = count
                    continue
                new = [f for f in snap.files if f not in self._seen and f not in self._skipped]
                good = self._readable(new)
                if not good:
                    continue
                if table == "enriched":
                    self._insert("posts", "id", "ingested_at", good)
                else:
                    self._upsert_alerts(good)
                self._seen.update(good)
                changed = True
            if changed:
                self.version += 1
                self._cache.clear()
            return changed

    def _readable(self, files: list[str]) -> list[str]:
        """Files whose Parquet footer DuckDB can read; the others are remembered as skipped."""
        if not files:
            return []
        if self._remote:
            return files  # object-store files are read through pyarrow, which fails the whole load
        try:
            self._con.execute("SELECT count(*) FROM parquet_metadata(?)", [files]).fetchone()
            return files
        except duckdb.Error:
            good = []
            for f in files:
                try:
                    self._con.execute("SELECT count(*) FROM parquet_metadata(?)", [f]).fetchone()
                    good.append(f)
                except duckdb.Error as exc:
                    self._skipped[f] = str(exc).splitlines()[0]
            return good

    def _insert(self, table: str, key: str, first_by: str, files: list[str]) -> None:
        """Append the rows of `files` whose `key` the table does not hold yet (first by `first_by`)."""
        if self._remote:
            schema = ENRICHED_SCHEMA if table == "posts" else ALERT_SCHEMA
            snap = tables.TableFiles(table, None, tuple(files), schema)
            self._con.register("_new_files", tables.arrow_dataset(self.root, snap))
            source, params = "_new_files", []
        else:
            source, params = "read_parquet(?, union_by_name=true, hive_partitioning=false)", [files]
        self._con.execute(
            f"""INSERT INTO {table} BY NAME
                SELECT n.* FROM (
                    SELECT * FROM {source}
                    QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {first_by}) = 1
                ) n ANTI JOIN {table} t ON n.{key} = t.{key}""", params)
        if self._remote:
            self._con.unregister("_new_files")

    def _upsert_alerts(self, files: list[str]) -> None:
        """Alerts are rewritten with a higher `revision` when their event escalates: keep the latest."""
        if self._remote:  # object-store files: through pyarrow (DuckDB's httpfs is not installable)
            snap = tables.TableFiles("alerts", None, tuple(files), ALERT_SCHEMA)
            self._con.register("_alert_files", tables.arrow_dataset(self.root, snap))
            source, params = "_alert_files", []
        else:
            source, params = "read_parquet(?, union_by_name=true, hive_partitioning=false)", [files]
        self._con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _new_alerts AS
            SELECT * FROM {source}
            QUALIFY row_number() OVER (PARTITION BY alert_id
                                       ORDER BY coalesce(revision, 0) DESC, created_at DESC) = 1""",
            params)
        if self._remote:
            self._con.unregister("_alert_files")
        self._con.execute("""DELETE FROM alerts WHERE alert_id IN (
                               SELECT n.alert_id FROM _new_alerts n JOIN alerts a USING (alert_id)
                               WHERE coalesce(n.revision, 0) > coalesce(a.revision, 0))""")
        self._con.execute("INSERT INTO alerts BY NAME SELECT n.* FROM _new_alerts n "
                          "ANTI JOIN alerts a ON n.alert_id = a.alert_id")
        self._con.execute("DROP TABLE _new_alerts")

    # -- reading ------------------------------------------------------------------------------
    def query(self, sql: str, params: list | None = None, cache: bool = True) -> pd.DataFrame:
        """Run a parameterised query, cached until the lake changes (unless `cache=False`,
        for one-off large results such as exports)."""
        params = params or []
        key = (self.version, sql, _hashable(params))
        hit = self._cache.get(key) if cache else None
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        # A cursor is a connection of its own to the same database: safe across Streamlit's
        # per-session threads while refresh() inserts under the lock.
        cur = self._con.cursor()
        try:
            df = cur.sql(sql, params=params).to_arrow_table().to_pandas()
        finally:
            cur.close()
        if not cache:
            return df
        self._cache[key] = df
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return df

    def clear_cache(self) -> None:
        self._cache.clear()

    def status(self) -> LakeStatus:
        if not (tables.exists(self.root) if self._remote else Path(self.root).is_dir()):
            return LakeStatus(exists=False)
        row = self.query("SELECT count(*), min(published_at), max(published_at), max(ingested_at) FROM posts").iloc[0]
        alerts = int(self.query("SELECT count(*) AS n FROM alerts").iloc[0, 0])
        return LakeStatus(exists=True, posts=int(row.iloc[0]), dead_letters=self._dead_letters, alerts=alerts,
                          oldest=_ts(row.iloc[1]), newest=_ts(row.iloc[2]), newest_ingested=_ts(row.iloc[3]),
                          skipped=dict(self._skipped))


_STORES: dict[str, LakeStore] = {}
_STORES_LOCK = threading.Lock()


def open_store(root: str | Path) -> LakeStore:
    """The process-wide store for a lake: every browser session shares one in-memory copy, and
    `finpulse dashboard` can start loading it before the first visitor arrives."""
    key = str(root) if is_remote(root) else str(Path(root).resolve())
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = LakeStore(key)
        return _STORES[key]


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


def _ts(value) -> datetime | None:
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()
