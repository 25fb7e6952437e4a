"""`finpulse lake migrate` for Delta tables of the older day-partitioned layout (`date=YYYY-MM-DD/`
folders): each table is rewritten in place into the current layout (not partitioned, files in
time order; see tables.py) in ONE Delta commit per table.

Readers never see a partial state: the rewrite is one overwrite commit, so a reader that lists
version V reads the day files and one that lists V+1 the new files, never both or neither. The
day files stay on disk until a vacuum's retention has passed, so a query that listed V before the
commit still reads them.

Every row once: the rewrite reads exactly the files of version V and may only be committed as
version V+1 (`max_commit_retries=0`). If any writer committed meanwhile (a stream bundle, a
backfill chunk, a compaction), delta-rs would otherwise rebase the overwrite onto the newer
version without a conflict, leaving the newcomer's day-partitioned files in a table that is no
longer partitioned by day; instead nothing is committed and the table is read again, up to
ATTEMPTS times, after which `RelayoutBusy` asks for the writers to pause. A writer whose commit
lands after the rewrite fails with "Metadata changed" and writes again in the new layout
(tables.append).

Exactly-once positions: a source's position is a Delta app transaction, table state rather than
a file, which an overwrite keeps (checked after the commit); the rewrite also carries every
transaction found in the log, so the positions survive even a writer that dropped them. The
table's properties (`finpulse.rescored`) are metadata and are kept by the overwrite.

Rows stream through in day order (the `date=` of each file, then its path), which is time order
to within a day, so memory stays flat and the new files come out clustered by time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.storage import is_remote, open_storage
from finpulse.schemas.errors import LakeError

log = logging.getLogger(__name__)

ATTEMPTS = 5  # rewrites tried before giving up on a table that writers keep committing to


class RelayoutBusy(LakeError):
    """Writers kept committing to a table while it was being rewritten; nothing was changed."""


class RelayoutLostTransactions(LakeError):
    """A source position differs after the rewrite (never seen; the commit is kept, the report says which)."""


def day_partitioned(root: str | Path) -> list[str]:
    """The lake's tables still in the older day-partitioned layout."""
    out = []
    for table in tables.SCHEMAS:
        dt = tables.open_table(root, table)
        if dt is not None and tables.partition_columns(dt):
            out.append(table)
    return out


def app_ids(root: str | Path, table: str) -> set[str]:
    """Every app id with a transaction in `table`'s log (commits and checkpoints).

    delta-rs answers `transaction_version(app)` but lists no app ids, so they are read from the
    log itself."""
    import pyarrow.parquet as pq

    storage = open_storage(root)
    ids: set[str] = set()
    for rel in storage.list(f"{table}/_delta_log"):
        name = rel.rsplit("/", 1)[-1]
        if name.endswith(".json") and name.split(".")[0].isdigit():
            for line in (storage.read_text(rel) or "").splitlines():
                if '"txn"' in line:
                    txn = json.loads(line).get("txn")
                    if txn:
                        ids.add(txn["appId"])
        elif ".checkpoint" in name and name.endswith(".parquet"):
            if is_remote(root):
                from finpulse.pipeline.lake.storage import ObjectStorage

                assert isinstance(storage, ObjectStorage)
                data = pq.read_table(storage.full_path(rel), columns=["txn"], filesystem=storage.filesystem)
            else:
                data = pq.read_table(Path(storage.root) / rel, columns=["txn"])
            ids.update(t["appId"] for t in data.column("txn").to_pylist() if t)
    return ids


def _day_order(uri: str) -> tuple[str, str]:
    day = uri.split(f"{tables.PARTITION}=", 1)[1].split("/", 1)[0] if f"{tables.PARTITION}=" in uri else ""
    return day, uri


def _rows(root: str | Path, dt, table: str, counted: dict[str, int]) -> pa.RecordBatchReader:
    """The rows of `dt`'s version, in day order, with the table's schema less the partition column."""
    full = pa.schema(dt.schema().to_arrow())
    schema = full.remove(full.get_field_index(tables.PARTITION)) if tables.PARTITION in full.names else full
    files = sorted(dt.file_uris(), key=_day_order)
    if not is_remote(root):
        files = [f.removeprefix("file://") for f in files]
    dataset = tables.arrow_dataset(root, tables.TableFiles(table, dt.version(), tuple(files), schema))

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in dataset.to_batches(batch_size=tables.ROW_GROUP_ROWS):
            counted["rows"] += batch.num_rows
            yield batch

    return pa.RecordBatchReader.from_batches(schema, batches())


def relayout_table(root: str | Path, table: str, attempts: int = ATTEMPTS,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Rewrite one day-partitioned table into the current layout (see the module docstring)."""
    from deltalake import CommitProperties, Transaction, write_deltalake

    say = progress or log.info
    for attempt in range(1, attempts + 1):
        dt = tables.open_table(root, table)
        if dt is None or not tables.partition_columns(dt):
            return {"relayout": "not needed"}
        t0 = time.monotonic()
        version, files_before = dt.version(), len(dt.file_uris())
        rows_before = dt.count()
        apps = sorted(app_ids(root, table))
        positions = {a: v for a in apps if (v := dt.transaction_version(a)) is not None}
        say(f"relayout {table}: {files_before} day-partitioned files, {rows_before} rows at version {version}"
            f" (attempt {attempt}/{attempts})")
        counted = {"rows": 0}
        try:
            write_deltalake(
                dt,
                _rows(root, dt, table, counted),
                mode="overwrite",
                schema_mode="overwrite",  # the only write that may change a table's partition columns
                partition_by=[],
                writer_properties=tables.writer_properties(),
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(a, int(v)) for a, v in positions.items()] or None,
                    custom_metadata={"finpulse.op": "relayout", "finpulse.relayout_from": str(version)},
                    max_commit_retries=0,  # only as version+1: a concurrent commit means read again
                ),
            )
        except Exception as exc:  # noqa: BLE001 - delta-rs's CommitFailedError has no stable import path
            if "Failed to commit" not in str(exc) and "CommitFailed" not in type(exc).__name__:
                raise
            say(f"relayout {table}: a writer committed during the rewrite; reading the table again")
            continue
        after = tables.open_table(root, table)
        lost = {a: (v, after.transaction_version(a)) for a, v in positions.items() if after.transaction_version(a) != v}
        result = {
            "version_before": version,
            "version_after": after.version(),
            "files_before": files_before,
            "files_after": len(after.file_uris()),
            "rows_before": rows_before,
            "rows_written": counted["rows"],
            "rows_after": after.count(),
            "transactions_kept": len(positions) - len(lost),
            "attempts": attempt,
            "seconds": round(time.monotonic() - t0, 2),
        }
        say(f"relayout {table}: {files_before} -> {result['files_after']} files, {result['rows_after']} rows, "
            f"{result['transactions_kept']} source positions kept")
        if lost:
            raise RelayoutLostTransactions(f"relayout of {table} committed (version {after.version()}) but these "
                                           f"source positions changed: {lost}")
        return result
    raise RelayoutBusy(f"writers kept committing to {table} while it was being rewritten ({attempts} tries); nothing "
                       f"was changed. Pause the stream/backfill (or run at a quiet moment) and run "
                       f"`finpulse lake migrate` again")


def relayout(root: str | Path, progress: Callable[[str], None] | None = None) -> dict:
    """Rewrite every day-partitioned table of the lake (one commit per table); per table, the figures."""
    return {table: relayout_table(root, table, progress=progress) for table in day_partitioned(root)}
