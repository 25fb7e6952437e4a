"""The delivery outbox beside the tables: append-only record logs over the storage seam.

Alert delivery keeps two kinds of state next to the alerts, on the same storage as the lake
(a local directory or an object store alike): logs of what is to be sent (routed notices) and,
per destination, a ledger of what that destination has accepted and when. Both are a
`RecordLog` under `LAKE/_outbox/<name>/`.

Why segments and not one file: object stores have no append and no rename, and a rewrite of a
whole log per delivered message grows with the log. So each append is one new object
(`<seq>-<random>.jsonl`, one PUT: readers see all of it or none of it, on S3 as on a POSIX
directory through `put_atomic`), and once a log has more than `COMPACT_AT` segments they are
merged into one new segment and the old ones deleted. Every record has an `id`; a reader keeps
the first record of each id, in segment order, so a compaction that dies between writing the
merged segment and deleting the old ones, or two writers appending the same record (an object
store has no flock: see locks.py), leave duplicates that no reader sees.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from finpulse.pipeline.lake.storage import LakeStorage, open_storage
from finpulse.schemas.errors import LakeError

ROOT = "_outbox"
COMPACT_AT = 16  # segments before a merge: bounds the GETs a read costs on an object store


class RecordLog:
    """An append-only log of JSON records (each with a unique `id`), oldest first."""

    def __init__(self, lake: str | Path, name: str, storage: LakeStorage | None = None) -> None:
        self.storage = storage or open_storage(lake)
        self.prefix = f"{ROOT}/{name}"
        self._names: list[str] | None = None  # segment names, cached after the first listing

    def _segments(self) -> list[str]:
        if self._names is None:
            self._names = sorted(self.storage.list(self.prefix, ".jsonl"))
        return self._names

    def read(self) -> list[dict[str, Any]] | None:
        """The records, first of each id, in order; None if the log was never written.

        A segment that vanished between the listing and its read was merged by another process
        (`compact` writes the merged segment before deleting the old ones): list again and re-read,
        rather than take the missing part as empty (an empty ledger would send everything again)."""
        for _ in range(20):
            self._names = None  # another process may have appended or merged
            names = self._segments()
            if not names:
                return None
            texts = [self.storage.read_text(name) for name in names]
            if all(text is not None for text in texts):
                return self._records(texts)
        raise LakeError(f"{self.prefix}: segments keep vanishing while read (another process merging in a loop?)")

    @staticmethod
    def _records(texts: list[str | None]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out: list[dict[str, Any]] = []
        for text in texts:
            for line in (text or "").splitlines():
                if line.strip():
                    record = json.loads(line)
                    if record["id"] not in seen:
                        seen.add(record["id"])
                        out.append(record)
        return out

    def append(self, records: Iterable[dict[str, Any]], *, create: bool = False) -> None:
        """Add records in one segment (one atomic PUT); merges the segments when there are many.
        `create`: write the segment even if empty, so the log exists (`read` no longer says None)."""
        records = list(records)
        if not records and not create:
            return
        self._put(records)
        if len(self._segments()) > COMPACT_AT:
            self.compact()

    def _put(self, records: list[dict[str, Any]]) -> None:
        names = self._segments()
        seq = int(names[-1].rsplit("/", 1)[1].split("-", 1)[0]) + 1 if names else 1
        name = f"{self.prefix}/{seq:012d}-{uuid.uuid4().hex[:8]}.jsonl"
        self.storage.put_atomic(name, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode())
        names.append(name)

    def compact(self) -> None:
        """Merge every segment into one (written first, then the old ones deleted)."""
        records = self.read() or []
        old = list(self._segments())
        self._put(records)
        for name in old:
            self.storage.remove(name)
        self._names = self._segments()[len(old):]


class Ledger:
    """What one destination has accepted: message id -> unix time (0: never sent, started after it)."""

    def __init__(self, lake: str | Path, destination: str, storage: LakeStorage | None = None) -> None:
        self.destination = destination
        self.log = RecordLog(lake, "sent-" + hashlib.sha256(destination.encode()).hexdigest()[:16], storage)

    def sent(self) -> dict[str, float] | None:
        """None: the destination has never been used on this lake."""
        records = self.log.read()
        return None if records is None else {r["id"]: float(r["at"]) for r in records}

    def mark(self, ids: Iterable[str], at: float) -> None:
        self.log.append({"id": i, "at": at} for i in ids)

    def open(self, ids: Iterable[str]) -> bool:
        """First use: record `ids` as done (at 0), so a new destination starts after them and does
        not replay history; True if it was the first use."""
        if self.log.read() is not None:
            return False
        self.log.append(({"id": i, "at": 0.0} for i in ids), create=True)
        return True


__all__ = ["COMPACT_AT", "Ledger", "RecordLog"]
