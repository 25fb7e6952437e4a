"""The lake's one seam: its Delta Lake tables, located, opened, written and read the same way
on a local directory, s3:// or gs://.

Every writer (the stream and backfill commits, alerts, rescore, migrate, optimize) and every
reader (`finpulse query`, `alerts`, `lake-check`, the dashboard, the bench) goes through here,
so there is one answer to "which files make up table T at version V": the table's own log
(`DeltaTable.file_uris()`). Readers read exactly those files and nothing else, so they never see
an uncommitted or compacted-away file, whatever is lying in the folder.

Tables are `LAKE/<name>/` with `_delta_log/` and NOT partitioned: files sit in the table folder,
clustered by time (`TIME_COLUMNS`) when compacted, so DuckDB's row-group statistics on the time
column skip what a query does not need. A day partition made every day at least one file (years
of archives: thousands of files, each opened by every query) for tables far below the terabyte
where Delta's guidance starts partitioning; see docs/LAKE.md for the measurements. Writers still
hand rows with their `date` (YYYY-MM-DD): it is dropped for these tables, and used only by a table
of the older day-partitioned layout (`date=...` folders), which keeps being appended to in its own
layout until `finpulse lake migrate` rewrites it (lake/relayout.py). Readers never depend on the
layout: they read the files the log lists, with the record columns only.

Object-store URLs keep the form the rest of finpulse uses
(`s3://bucket/lake?endpoint_override=host:port&scheme=http&region=us-east-1`); the query
parameters are pyarrow's, translated here into delta-rs storage options. Commits on S3 use
delta-rs's put-if-absent (`conditional_put=etag`, i.e. `If-None-Match: *` on the log entry),
never `AWS_S3_ALLOW_UNSAFE_RENAME` (see docs/DEPLOY.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa

from finpulse.pipeline.lake.storage import is_remote
from finpulse.schemas.arrow import ALERT_SCHEMA, DEADLETTER_SCHEMA, ENRICHED_SCHEMA, PRICES_SCHEMA

log = logging.getLogger(__name__)

SCHEMAS: dict[str, pa.Schema] = {"enriched": ENRICHED_SCHEMA, "deadletter": DEADLETTER_SCHEMA, "alerts": ALERT_SCHEMA}
# Reference tables a user loads (`finpulse prices load`, pipeline/market/): written by their own
# command as a keyed merge, not partitioned, not migrated or compacted with the record tables above;
# read through `snapshot` like every table.
REFERENCE_SCHEMAS: dict[str, pa.Schema] = {"prices": PRICES_SCHEMA}
PARTITION = "date"  # the day column writers hand with rows; a partition only in older day-partitioned tables
# the column each record table is clustered by (compaction order, relayout order, z-order)
TIME_COLUMNS: dict[str, str] = {"enriched": "published_at", "deadletter": "ingested_at", "alerts": "created_at"}
# rows per Parquet row group: the unit DuckDB parallelises a scan over and skips by statistics
# (delta-rs writes 1M-row groups by default: one group, one thread, nothing to skip in a table
# of a million rows)
ROW_GROUP_ROWS = 65_536
RESCORED_PROPERTY = "finpulse.rescored"  # table property set by the first rescore
COMMIT_RETRIES = 30  # delta-rs re-tries a commit whose version was taken by a concurrent writer
METADATA_RETRIES = 5  # re-reads after losing a race on a metadata change (table creation, new column)


def storage_options(root: str | Path) -> dict[str, str]:
    """delta-rs storage options for a lake root (empty for a local directory).

    Credentials are never in the URL: delta-rs reads AWS_* / GOOGLE_* from the environment.
    """
    if not is_remote(root):
        return {}
    parts = urlsplit(str(root))
    query = dict(parse_qsl(parts.query))
    opts: dict[str, str] = {}
    if parts.scheme in ("s3", "s3a"):
        # Safe concurrent commits: the log entry is written with If-None-Match (put-if-absent).
        opts["conditional_put"] = "etag"
        if "endpoint_override" in query:
            scheme = query.get("scheme", "https")
            endpoint = query["endpoint_override"]
            opts["AWS_ENDPOINT_URL"] = endpoint if "://" in endpoint else f"{scheme}://{endpoint}"
            if scheme == "http":
                opts["AWS_ALLOW_HTTP"] = "true"
        if "region" in query:
            opts["AWS_REGION"] = query["region"]
    return opts


def table_uri(root: str | Path, table: str) -> str:
    """The Delta table's URI: LAKE/<table> (the URL's query string dropped for object stores)."""
    if is_remote(root):
        parts = urlsplit(str(root))
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/{table}"
    return str(Path(str(root).removeprefix("file://")).resolve() / table)


def open_table(root: str | Path, table: str, as_of: int | datetime | None = None):
    """The DeltaTable (at a version or time when `as_of` is given), or None if it does not exist yet."""
    from deltalake import DeltaTable

    uri, opts = table_uri(root, table), storage_options(root)
    if not DeltaTable.is_deltatable(uri, storage_options=opts or None):
        return None
    dt = DeltaTable(uri, storage_options=opts or None, version=as_of if isinstance(as_of, int) else None)
    if isinstance(as_of, datetime):
        # delta-rs loads version 0 for a time before the first commit: the table did not exist yet
        if as_of.timestamp() * 1000 < min(h["timestamp"] for h in dt.history()):
            return None
        try:
            dt.load_as_version(as_of)
        except Exception as exc:  # noqa: BLE001 - delta-rs raises a generic error for "before the first commit"
            if "before" not in str(exc).lower() and "no commit" not in str(exc).lower():
                raise
            return None
    return dt


def exists(root: str | Path) -> bool:
    """True if the lake has at least one table (or is a folder/bucket prefix holding something)."""
    return any(open_table(root, t) is not None for t in SCHEMAS)


@dataclass(frozen=True)
class TableVersion:
    """`--as-of enriched@12`: one version of one named table (each table has its own version numbers)."""

    table: str
    version: int

    def __str__(self) -> str:
        return f"{self.table}@{self.version}"


AsOf = TableVersion | datetime | int | None  # int: a version of `enriched` (library callers)


def parse_as_of(text: str | None) -> TableVersion | datetime | None:
    """`--as-of` value: TABLE@VERSION (a version of that table) or an ISO time (naive = UTC).
    A bare number is refused: every table has its own versions, so it would name none of them."""
    if text is None or text.strip() == "":
        return None
    text = text.strip()
    table, sep, version = text.partition("@")
    tables = [*SCHEMAS, *REFERENCE_SCHEMAS]
    if sep:
        if table not in tables or not version.isdigit():
            raise ValueError(f"{text!r}: give TABLE@VERSION with a table of {', '.join(tables)} and a version "
                             "number, e.g. enriched@12")
        return TableVersion(table, int(version))
    if text.isdigit():
        raise ValueError(f"{text!r}: each table has its own versions; name the table, e.g. enriched@{text}, "
                         "or give a time, e.g. 2026-11-02T09:00:00Z")
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither TABLE@VERSION (e.g. enriched@12) nor an ISO time "
                         "(e.g. 2026-11-02T09:00:00Z)") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def resolve_as_of(root: str | Path, as_of: AsOf, names: Sequence[str]) -> dict[str, int | datetime | None]:
    """What each of `names` is opened at for one `--as-of`: a time is every table's; TABLE@VERSION is that
    table's version and, for the others, the time of that version's commit (the lake as it was then).
    A version the table does not have is a UsageError naming the table and its latest version."""
    from finpulse.schemas.errors import UsageError

    if as_of is None or isinstance(as_of, datetime):
        return dict.fromkeys(names, as_of)
    pinned = as_of if isinstance(as_of, TableVersion) else TableVersion("enriched", as_of)
    dt = open_table(root, pinned.table)
    if dt is None:
        raise UsageError(f"--as-of {pinned}: the lake at {root} has no {pinned.table} table yet")
    latest = dt.version()
    commit = next((h for h in dt.history() if h.get("version") == pinned.version), None)
    if pinned.version > latest or commit is None:
        raise UsageError(f"--as-of {pinned}: table {pinned.table} has versions up to {latest} "
                         f"(latest: {pinned.table}@{latest})")
    when = datetime.fromtimestamp(commit["timestamp"] / 1000, timezone.utc)
    return {name: pinned.version if name == pinned.table else when for name in names}


@dataclass(frozen=True)
class TableFiles:
    """One table at one version: the files a reader must read, and nothing else."""

    table: str
    version: int | None  # None: the table does not exist (at that time)
    files: tuple[str, ...]  # absolute paths locally, s3://bucket/key URIs on object stores
    schema: pa.Schema  # the table's current schema (code schema plus any evolved columns)
    rescored: bool = False  # rows of several model versions exist for some ids (see jobs/rescore.py)


def snapshot(root: str | Path, table: str, as_of: int | datetime | None = None) -> TableFiles:
    """The files of `table` at its latest version (or `as_of`: this table's version, or a time)."""
    dt = open_table(root, table, as_of)
    schema = SCHEMAS[table] if table in SCHEMAS else REFERENCE_SCHEMAS[table]
    if dt is None:
        return TableFiles(table, None, (), schema)
    files = tuple(dt.file_uris())
    if not is_remote(root):
        files = tuple(f.removeprefix("file://") for f in files)
    rescored = dt.metadata().configuration.get(RESCORED_PROPERTY) == "true"
    return TableFiles(table, dt.version(), files, schema, rescored)


def object_paths(root: str | Path, uris: Sequence[str]):
    """(pyarrow filesystem, [bucket/key ...]) for object-store file URIs of this lake."""
    from finpulse.pipeline.lake.storage import object_filesystem

    fs, _ = object_filesystem(str(root))
    return fs, [u.split("://", 1)[1] for u in uris]


def arrow_dataset(root: str | Path, files: TableFiles):
    """A pyarrow dataset over exactly the snapshot's files, with the declared schema (older files
    lacking newer columns read them as null)."""
    import pyarrow.dataset as pads

    if is_remote(root):
        fs, paths = object_paths(root, files.files)
        return pads.dataset(paths, schema=files.schema, format="parquet", filesystem=fs)
    return pads.dataset(list(files.files), schema=files.schema, format="parquet")


def rows_table(table: str, rows: Sequence[Mapping], dates: Sequence[str]) -> pa.Table:
    """Rows as an Arrow table of the table's schema plus the `date` column (see `append`)."""
    data = pa.Table.from_pylist(list(rows), schema=SCHEMAS[table])
    return data.append_column(PARTITION, pa.array(list(dates), pa.string()))


def append(
    root: str | Path,
    table: str,
    data,
    transactions: Mapping[str, int] | None = None,
    metadata: Mapping[str, str] | None = None,
    dt=None,
) -> None:
    """Append `data` (with its `date` column) in ONE commit carrying one Delta transaction per
    source (app_id -> end position).

    The table's own layout decides what is written: `date` is dropped for a table that is not
    partitioned (every new table), and is the partition of a table of the older day layout. A
    relayout committed meanwhile makes the stale write fail with "Metadata changed"; it is then
    written again in the new layout.

    `schema_mode="merge"` lets a newer code schema add nullable columns to an older table without
    a rewrite. A commit that loses a race to a concurrent writer (a backfill, compaction, alerts)
    is re-tried by delta-rs on the next version; appends never conflict with each other. `dt`, an
    already loaded DeltaTable of this table, saves re-reading its log.
    """
    from deltalake import CommitProperties, Transaction, write_deltalake

    props = CommitProperties(
        app_transactions=[Transaction(app, int(v)) for app, v in (transactions or {}).items()] or None,
        custom_metadata=dict(metadata or {}) or None,
        max_commit_retries=COMMIT_RETRIES,
    )
    if dt is None:
        dt = open_table(root, table)
    for attempt in range(METADATA_RETRIES):
        parts = partition_columns(dt)
        rows = in_layout(data, parts)
        # merging schemas costs a third of a small commit; only ask for it when a column is new
        known = {f.name for f in dt.schema().fields} if dt is not None else set()
        merge = dt is None or bool(set(rows.schema.names) - known - set(parts))
        try:
            write_deltalake(
                dt if dt is not None else table_uri(root, table),
                rows,
                mode="append",
                partition_by=parts or None,
                schema_mode="merge" if merge else None,
                storage_options=None if dt is not None else storage_options(root) or None,
                commit_properties=props,
                writer_properties=writer_properties(),
            )
            return
        except Exception as exc:  # noqa: BLE001 - delta-rs's CommitFailedError is not importable by a stable name
            # Two writers creating the table (or adding a column) at once: the loser's metadata
            # action conflicts and is not re-tried by delta-rs. Nothing was committed, so read the
            # table as it is now and append again (with no schema change if none is needed).
            if "Metadata changed" not in str(exc) or attempt == METADATA_RETRIES - 1:
                raise
            if isinstance(data, pa.RecordBatchReader):
                raise  # a stream cannot be replayed (migrate runs alone)
            dt = open_table(root, table)


def partition_columns(dt) -> list[str]:
    """The table's partition columns: [] for the current layout (and for a table not created yet),
    ["date"] for a table of the older day layout."""
    return [] if dt is None else list(dt.metadata().partition_columns)


def in_layout(data, parts: Sequence[str]):
    """`data` (a table or a batch stream, with the writers' `date` column) as the table's layout
    stores it: without `date` unless `date` is a partition column."""
    if PARTITION in parts or PARTITION not in data.schema.names:
        return data
    if isinstance(data, pa.RecordBatchReader):
        schema = data.schema.remove(data.schema.get_field_index(PARTITION))
        return pa.RecordBatchReader.from_batches(schema, (b.drop_columns([PARTITION]) for b in data))
    return data.drop_columns([PARTITION])


def writer_properties():
    """Parquet settings of every data file the lake writes: ZSTD (about half snappy's size) and
    row groups of ROW_GROUP_ROWS."""
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD", max_row_group_size=ROW_GROUP_ROWS)


def transaction_versions(root: str | Path, table: str, app_ids: Sequence[str], dt=None) -> dict[str, int]:
    """The end position each source has committed to `table` (0 if none), from the table's log
    (`dt`: an already loaded and updated DeltaTable of it)."""
    dt = dt if dt is not None else open_table(root, table)
    out = {}
    for app in app_ids:
        v = dt.transaction_version(app) if dt is not None else None
        out[app] = int(v) if v is not None else 0
    return out


def optimize(
    root: str | Path,
    retention_hours: float = 24.0,
    target_size: int | None = None,
    *,
    only: Sequence[str] | None = None,
    cluster: bool = False,
    vacuum: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Compact small files into large ones, then vacuum files that left the table more than
    `retention_hours` ago; per table (`only` these, else all), the delta-rs metrics.

    Compaction is a normal Delta commit (remove small files, add their merge): readers that
    listed the older version keep reading its files, which vacuum only deletes after the
    retention, so a query running during compaction never loses a file. It never conflicts with
    appends, so the stream keeps committing meanwhile. It rewrites only files below the target
    size, in the order they were added (time order for a stream or an archive read in order).

    `cluster` z-orders instead, by the table's time column (`TIME_COLUMNS`): every file is
    rewritten in time order, so row groups cover disjoint time ranges; worth it after writes out
    of time order (a rescore, archives read in parallel), and a full rewrite of the table.
    """
    from deltalake import CommitProperties

    out = {}
    for table in only or SCHEMAS:
        dt = open_table(root, table)
        if dt is None:
            continue
        t0 = time.monotonic()
        files_before = len(dt.file_uris())
        parts = partition_columns(dt)
        how = "z-order" if cluster and not parts else "compact"
        if progress:
            progress(f"optimize {table}: {files_before} files, {how}"
                     + (" (day-partitioned: `finpulse lake migrate` rewrites it into few files)" if parts else ""))
        props = CommitProperties(max_commit_retries=COMMIT_RETRIES, custom_metadata={"finpulse.op": "optimize"})
        if how == "z-order":
            metrics = dt.optimize.z_order([TIME_COLUMNS[table]], target_size=target_size,
                                          writer_properties=writer_properties(), commit_properties=props)
        else:
            metrics = dt.optimize.compact(target_size=target_size, writer_properties=writer_properties(),
                                          commit_properties=props)
        removed: list[str] = []
        if vacuum:
            dt = open_table(root, table)
            removed = dt.vacuum(retention_hours=int(retention_hours), dry_run=False, enforce_retention_duration=False)
            dt.cleanup_metadata()  # expired log entries (delta.logRetentionDuration, 30 days by default)
        out[table] = {
            "files_before": files_before,
            "files_after": len(open_table(root, table).file_uris()),
            "files_added": metrics.get("numFilesAdded"),
            "files_removed": metrics.get("numFilesRemoved"),
            "vacuumed": len(removed),
            "seconds": round(time.monotonic() - t0, 2),
        }
        if progress:
            progress(f"optimize {table}: {files_before} -> {out[table]['files_after']} files "
                     f"in {out[table]['seconds']} s")
    return out


def history_times(root: str | Path, table: str = "enriched", limit: int | None = None) -> list[dict]:
    """(version, timestamp, operation) per commit, newest first: for `--as-of` help and the dashboard."""
    dt = open_table(root, table)
    return [] if dt is None else dt.history(limit)
