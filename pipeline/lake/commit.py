"""The Parquet lake and its exactly-once commit protocol, on a local directory or an object store.

Each source (a Kafka topic-partition, or an archive file) advances through offset ranges.
A flush of range [start, end) for one source:

1. writes its Parquet files into LAKE/_staging/ (invisible to readers);
2. atomically replaces LAKE/_progress/<source>.json with {end, pending: [staged -> final]}:
   this replace is the commit point (a rename locally, a single PUT on S3/GCS);
3. publishes each staged file at its final place (enriched/date=.../, deadletter/date=...):
   a rename locally, a copy then delete on an object store (see storage.py).

A crash before 2 leaves only staging garbage (the range is read again); a crash after 2 is
rolled forward before anything else happens to that source: by `recover()` at start-up, and by
the next `commit()` of the same source (a runner that retries a failed bundle on another worker
finishes the earlier attempt's publish first). Publishing is idempotent, so rolling forward twice
is harmless. Readers only ever see whole, committed files, and a row is never written twice
because a source resumes at `end`. File names carry the source and range, so replays would
overwrite rather than duplicate.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from finpulse.pipeline.lake.storage import is_remote, open_storage
from finpulse.schemas.arrow import DEADLETTER_SCHEMA, ENRICHED_SCHEMA

log = logging.getLogger(__name__)

TABLES = {"enriched": ENRICHED_SCHEMA, "deadletter": DEADLETTER_SCHEMA}
WRITER = f"{socket.gethostname()}:{os.getpid()}"  # recorded with each commit: which worker wrote it
STAGING = "_staging"
PROGRESS = "_progress"
SOURCE_PREFIXES = ("kafka.", "file.")  # stream partitions, archive files


def _source_of(rel: str) -> str:
    """`_progress/kafka.news.0.json` -> `kafka.news.0` (also for `.json.tmp` files)."""
    return rel.rsplit("/", 1)[-1].split(".json", 1)[0]


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
    """The commit protocol over a `LakeStorage`; `root` is a directory or an s3:// / gs:// URL."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root) if is_remote(root) else Path(root)
        self.storage = open_storage(root)

    # -- single writer ------------------------------------------------------------------------
    def lock(self, role: str):
        """Hold an exclusive lock for `role` (e.g. "stream") while the returned handle is open.

        Two streams on one lake would both read every partition and race on its progress; the
        lock makes the second one fail at start-up with a clear message instead. Locally a flock;
        on an object store a best-effort lease (see storage.ObjectStorage.lock).
        """
        return self.storage.lock(role)

    # -- progress -----------------------------------------------------------------------------
    def _state(self, source: str) -> dict | None:
        text = self.storage.read_text(f"{PROGRESS}/{source}.json")
        return json.loads(text) if text else None

    def committed(self, source: str) -> int:
        """The first position not yet in the lake for `source` (0 if none)."""
        state = self._state(source)
        return int(state["end"]) if state else 0

    def all_committed(self) -> dict[str, int]:
        out = {}
        for rel in self.storage.list(PROGRESS, ".json"):
            text = self.storage.read_text(rel)
            if text:
                out[rel.rsplit("/", 1)[-1].removesuffix(".json")] = int(json.loads(text)["end"])
        return out

    # -- recovery -----------------------------------------------------------------------------
    def _roll_forward(self, state: dict) -> int:
        """Publish whatever a committed state still has in staging; returns files moved."""
        return sum(self.storage.publish(staged, final) for staged, final in state.get("pending", []))

    def recover(self, scope: str = "") -> int:
        """Finish committed flushes and discard uncommitted staging of the sources whose key starts
        with `scope` ("kafka." for the stream, "file." for backfills, "" for all); returns files
        rolled forward.

        Call at start-up under the writer lock of that scope. Staging is kept per source, so a
        stream starting while a backfill is mid-commit on the same lake leaves the backfill's
        staged files alone (deleting them used to lose rows whose progress said committed).
        """
        rolled = 0
        for rel in self.storage.list(PROGRESS, ".json"):
            if _source_of(rel).startswith(scope):
                text = self.storage.read_text(rel)
                if text:
                    rolled += self._roll_forward(json.loads(text))
        for rel in self.storage.list(PROGRESS, ".tmp"):
            if _source_of(rel).startswith(scope):
                self.storage.remove(rel)
        for folder in {rel.split("/")[1] for rel in self.storage.list(STAGING) if rel.count("/") >= 2}:
            # Folders are source keys; anything else is from an older layout and nobody's now.
            if folder.startswith(scope) or not folder.startswith(SOURCE_PREFIXES):
                self.storage.remove_tree(f"{STAGING}/{folder}")
        if not scope:
            self.storage.remove_tree(STAGING)
        if rolled:
            log.warning("recovered %d committed file(s) left in staging by an interrupted run", rolled)
        return rolled

    # -- writing ------------------------------------------------------------------------------
    def commit(self, source: str, start: int, end: int, rows: Iterable[Row]) -> int:
        """Write rows consumed from [start, end) of `source` and commit; returns rows written.

        Rows below the committed position are dropped (a replayed range), so a retry is harmless.
        """
        state = self._state(source)
        done = int(state["end"]) if state else 0
        if state and self._roll_forward(state):
            log.warning("%s: finished publishing an earlier attempt's committed files", source)
        if end <= done:
            return 0
        keep = [r for r in rows if r.position >= done]
        start = max(start, done)
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for r in keep:
            groups[(r.table, r.date)].append(r.data)
        batch = f"{STAGING}/{source}/{uuid.uuid4().hex}"
        pending: list[tuple[str, str]] = []
        for (table, date), data in sorted(groups.items()):
            name = f"{source}-{start:012d}-{end:012d}.parquet"
            staged = f"{batch}/{table}-{date}-{name}"
            self.storage.write_table(staged, pa.Table.from_pylist(data, schema=TABLES[table]))
            pending.append((staged, f"{table}/date={date}/{name}"))
        new_state = {"end": end, "start": start, "rows": len(keep), "pending": pending, "writer": WRITER}
        self._write_progress(source, new_state)
        self._roll_forward(new_state)
        if not is_remote(self.root):
            self.storage.remove_tree(batch)  # the empty batch folder (object stores have no folders)
        return len(keep)

    def _write_progress(self, source: str, state: dict) -> None:
        """The commit point: one atomic replace of the source's progress file."""
        self.storage.put_atomic(f"{PROGRESS}/{source}.json", json.dumps(state).encode())


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    """Write rows and fsync: the file must be complete on disk before the commit points at it."""
    table = pa.Table.from_pylist(rows, schema=schema)
    with open(path, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
