"""The Parquet lake and its exactly-once commit protocol.

Each source (a Kafka topic-partition, or an archive file) advances through offset ranges.
A flush of range [start, end) for one source:

1. writes its Parquet files into LAKE/_staging/ (invisible to readers);
2. atomically replaces LAKE/_progress/<source>.json with {end, pending: [staged -> final]}:
   this rename is the commit point;
3. renames each staged file to its final place (enriched/date=.../, deadletter/date=...).

A crash before 2 leaves only staging garbage (the range is read again); a crash after 2 is
rolled forward by `recover()` before anything is consumed. Readers only ever see whole,
committed files, and a row is never written twice because a source resumes at `end`.
File names carry the source and range, so replays would overwrite rather than duplicate.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from finpulse.schemas.arrow import DEADLETTER_SCHEMA, ENRICHED_SCHEMA

log = logging.getLogger(__name__)

TABLES = {"enriched": ENRICHED_SCHEMA, "deadletter": DEADLETTER_SCHEMA}


def source_key(topic: str, partition: int) -> str:
    return f"kafka.{_safe(topic)}.{partition}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@dataclass
class Row:
    """A row bound for a lake table, with the source position it consumed."""

    table: str  # "enriched" or "deadletter"
    data: dict
    source: str
    position: int
    date: str  # YYYY-MM-DD partition


class Lake:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.staging = self.root / "_staging"
        self.progress_dir = self.root / "_progress"

    # -- single writer ------------------------------------------------------------------------
    def lock(self, role: str):
        """Hold an exclusive lock for `role` (e.g. "stream") while the returned handle is open.

        Two streams on one lake would both read every partition and race on its progress; the
        lock makes the second one fail at start-up with a clear message instead.
        """
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / f".{role}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SystemExit(f"another finpulse {role} is already writing to {self.root}; stop it first "
                             f"(lock file {self.root / f'.{role}.lock'})") from None
        return handle

    # -- progress -----------------------------------------------------------------------------
    def _progress_file(self, source: str) -> Path:
        return self.progress_dir / f"{source}.json"

    def committed(self, source: str) -> int:
        """The first position not yet in the lake for `source` (0 if none)."""
        f = self._progress_file(source)
        if not f.is_file():
            return 0
        return int(json.loads(f.read_text())["end"])

    def all_committed(self) -> dict[str, int]:
        if not self.progress_dir.is_dir():
            return {}
        return {f.stem: int(json.loads(f.read_text())["end"]) for f in self.progress_dir.glob("*.json")}

    # -- recovery -----------------------------------------------------------------------------
    def recover(self) -> int:
        """Finish committed flushes and discard uncommitted staging; returns files rolled forward."""
        rolled = 0
        referenced: set[str] = set()
        if self.progress_dir.is_dir():
            for f in self.progress_dir.glob("*.json"):
                state = json.loads(f.read_text())
                for staged, final in state.get("pending", []):
                    referenced.add(staged)
                    src, dst = self.root / staged, self.root / final
                    if src.exists():
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(src, dst)
                        rolled += 1
            for tmp in self.progress_dir.glob("*.tmp"):
                tmp.unlink(missing_ok=True)
        if self.staging.is_dir():
            shutil.rmtree(self.staging, ignore_errors=True)
        if rolled:
            log.warning("recovered %d committed file(s) left in staging by an interrupted run", rolled)
        return rolled

    # -- writing ------------------------------------------------------------------------------
    def commit(self, source: str, start: int, end: int, rows: Iterable[Row]) -> int:
        """Write rows consumed from [start, end) of `source` and commit; returns rows written.

        Rows below the committed position are dropped (a replayed range), so a retry is harmless.
        """
        done = self.committed(source)
        if end <= done:
            return 0
        keep = [r for r in rows if r.position >= done]
        start = max(start, done)
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in keep:
            groups[(r.table, r.date)].append(r.data)
        batch_dir = self.staging / uuid.uuid4().hex
        batch_dir.mkdir(parents=True, exist_ok=True)
        pending: list[tuple[str, str]] = []
        for (table, date), data in sorted(groups.items()):
            name = f"{source}-{start:012d}-{end:012d}.parquet"
            staged = batch_dir / f"{table}-{date}-{name}"
            write_parquet(staged, data, TABLES[table])
            final = Path(table) / f"date={date}" / name
            pending.append((str(staged.relative_to(self.root)), str(final)))
        self._write_progress(source, {"end": end, "start": start, "rows": len(keep), "pending": pending})
        for staged, final in pending:
            dst = self.root / final
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / staged, dst)
        shutil.rmtree(batch_dir, ignore_errors=True)
        return len(keep)

    def _write_progress(self, source: str, state: dict) -> None:
        self.progress_dir.mkdir(parents=True, exist_ok=True)
        final = self._progress_file(source)
        tmp = final.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    """Write rows and fsync: the file must be complete on disk before the commit points at it."""
    table = pa.Table.from_pylist(rows, schema=schema)
    with open(path, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
