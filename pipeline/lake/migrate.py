"""`finpulse lake migrate`: a lake of the previous layout (Parquet files + `_staging/` +
`_progress/*.json`) into Delta tables, without losing or duplicating a row.

1. Commits the previous layout still owed (`pending` staged files of a progress record whose
   publish a crash interrupted) are published first, exactly as the old recovery did, so no
   committed row is left behind in staging; uncommitted staging is not data and is dropped.
2. Per table, every Parquet file of the old layout is appended in ONE Delta commit that also
   carries each source's position from `_progress` (so a stream or backfill resumes exactly where
   the old lake ended) and a `finpulse.migrate` transaction marking the table as migrated.
   Unreadable files are moved to `_quarantine/` with the reason, as `lake-check` does.
3. The old files move to `_legacy_layout/` (kept, not deleted: the operator removes them once
   satisfied), and `_legacy_layout/MIGRATED` is written.

Each step is recognisable afterwards, so an interrupted migration finishes when run again;
a completed one refuses to run twice (`AlreadyMigrated`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.storage import LakeStorage, is_remote, open_storage
from finpulse.schemas.errors import LakeError

log = logging.getLogger(__name__)

LEGACY = "_legacy_layout"
MARKER = f"{LEGACY}/MIGRATED"
MIGRATE_APP = "finpulse.migrate"
_DATE = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
# a data file delta-rs wrote (part-00000-<uuid>-c000.zstd.parquet): one a compaction or a relayout
# replaced is still on disk until vacuum, outside the log, and is not a file of the previous layout
_DELTA_FILE = re.compile(r"part-\d{5}-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-c\d{3}(\.[a-z0-9]+)?\.parquet$")


class MigrationError(LakeError):
    """The lake cannot be migrated (already done, nothing to migrate)."""


class AlreadyMigrated(MigrationError):
    pass


def legacy_files(storage: LakeStorage, table: str) -> list[str]:
    """The old layout's data files of `table` (relative paths): those no Delta log lists and that
    delta-rs did not write."""
    dt = tables.open_table(storage.root, table)
    known = set()
    if dt is not None:
        known = {u.split(f"/{table}/", 1)[1] for u in dt.file_uris()}
    return [
        rel
        for rel in storage.list(table, ".parquet")
        if "/_delta_log/" not in rel
        and rel.split("/", 1)[1] not in known
        and not rel.rsplit("/", 1)[-1].startswith(".")
        and not _DELTA_FILE.search(rel)
    ]


def _date_of(rel: str, data: pa.Table, table: str) -> list[str]:
    match = _DATE.search(rel)
    if match:
        return [match.group(1)] * data.num_rows
    column = {"alerts": "created_at", "deadletter": "ingested_at"}.get(table, "published_at")
    return [f"{ts:%Y-%m-%d}" for ts in data.column(column).to_pylist()]


def _read(storage: LakeStorage, rel: str, schema: pa.Schema) -> pa.Table:
    """One old file with the declared schema (columns it predates read as null)."""
    import pyarrow.dataset as pads

    if is_remote(storage.root):
        from finpulse.pipeline.lake.storage import ObjectStorage

        assert isinstance(storage, ObjectStorage)
        ds = pads.dataset([storage.full_path(rel)], schema=schema, format="parquet", filesystem=storage.filesystem)
    else:
        ds = pads.dataset([str(Path(storage.root) / rel)], schema=schema, format="parquet")
    return ds.to_table()


def _batches(
    storage: LakeStorage, table: str, files: list[str], bad: list[tuple[str, str]], counted: dict[str, int]
) -> Iterator[pa.RecordBatch]:
    schema = tables.SCHEMAS[table]
    for rel in files:
        try:
            data = _read(storage, rel, schema)
        except Exception as exc:  # noqa: BLE001 - a file no reader can open is quarantined, not migrated
            bad.append((rel, f"{type(exc).__name__}: {exc}"))
            continue
        counted["rows"] += data.num_rows
        yield from data.append_column(tables.PARTITION, pa.array(_date_of(rel, data, table), pa.string())).to_batches()


def migrate(root: str | Path) -> dict:
    """Migrate the lake at `root` (see the module docstring); returns rows and files per table."""
    storage = open_storage(root)
    if storage.read_text(MARKER) is not None:
        raise AlreadyMigrated(f"{root} was already migrated to Delta tables ({MARKER} exists); nothing to do")
    progress = {
        rel.rsplit("/", 1)[-1].removesuffix(".json"): json.loads(text)
        for rel in storage.list("_progress", ".json")
        if (text := storage.read_text(rel))
    }
    owed = sum(
        storage.publish(staged, final) for state in progress.values() for staged, final in state.get("pending", [])
    )
    olds = {t: legacy_files(storage, t) for t in tables.SCHEMAS}
    if not progress and not any(olds.values()) and not storage.list("_staging"):
        if any(tables.open_table(root, t) is not None for t in tables.SCHEMAS):
            raise AlreadyMigrated(f"{root} already holds Delta tables and nothing of the previous layout")
        raise MigrationError(f"{root} holds no lake of the previous layout")
    positions = {source: int(state["end"]) for source, state in progress.items()}
    report: dict = {"published_owed_files": owed, "sources": len(positions), "tables": {}}
    for table, files in olds.items():
        dt = tables.open_table(root, table)
        if dt is not None and dt.transaction_version(MIGRATE_APP) is not None:
            report["tables"][table] = {"files": len(files), "rows": "already committed"}
            continue
        bad: list[tuple[str, str]] = []
        schema = tables.SCHEMAS[table].append(pa.field(tables.PARTITION, pa.string()))
        counted = {"rows": 0}
        reader = pa.RecordBatchReader.from_batches(schema, _batches(storage, table, files, bad, counted))
        txns = {MIGRATE_APP: 1, **(positions if table != "alerts" else {})}
        tables.append(root, table, reader, txns, {"finpulse.op": "migrate"})
        rows = counted["rows"]
        for rel, problem in bad:
            storage.publish(rel, f"_quarantine/{rel}")
            storage.put_atomic(f"_quarantine/{rel}.reason.json", json.dumps({"file": rel, "problem": problem}).encode())
            log.warning("quarantined %s: %s", rel, problem)
        report["tables"][table] = {"files": len(files) - len(bad), "rows": rows, "quarantined": [r for r, _ in bad]}
    for files in olds.values():
        for rel in files:  # publish is idempotent: a file already moved is skipped
            storage.publish(rel, f"{LEGACY}/{rel}")
    for rel in storage.list("_progress"):
        storage.publish(rel, f"{LEGACY}/{rel}")
    storage.remove_tree("_staging")
    storage.put_atomic(MARKER, json.dumps(report, default=str).encode())
    if not is_remote(root):
        for folder in ("_progress", "_staging"):
            p = Path(root) / folder
            if p.is_dir() and not any(p.rglob("*")):
                import shutil

                shutil.rmtree(p, ignore_errors=True)
    return report
