"""Storage faults of the lake: full or read-only storage, and corrupt Parquet files.

A full or read-only lake is a condition to wait out, not a crash: `commit_patiently` keeps
retrying the same commit (the source is not read meanwhile, so nothing is buffered and
nothing is lost) and says what is wrong once a minute. A lake that is not writable at start-up
stops the stream before it consumes anything. `check_files` finds Parquet files no reader can
open in the tables' current versions, and `quarantine` moves them aside (LAKE/_quarantine/, with
the reason) and drops them from the table log.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from finpulse.schemas.errors import LakeNotWritable

log = logging.getLogger(__name__)

STORAGE_UNAVAILABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
QUARANTINE = "_quarantine"
TABLE_DIRS = ("enriched", "deadletter", "alerts")


# delta-rs reports I/O failures as its own errors whose text carries the OS error number
_OS_ERROR = re.compile(r"os error (\d+)|No space left on device|Read-only file system|Disk quota exceeded")


def storage_unavailable(exc: BaseException) -> bool:
    """True for a full or read-only lake, whether raised by Python I/O or by delta-rs."""
    if isinstance(exc, OSError) and exc.errno in STORAGE_UNAVAILABLE:
        return True
    match = _OS_ERROR.search(str(exc))
    if match is None:
        return False
    return match.group(1) is None or int(match.group(1)) in STORAGE_UNAVAILABLE


def require_writable(root: str | Path) -> None:
    """Exit with a clear message if a local lake cannot be written (read-only mount, no space)."""
    root = Path(root)
    probe = root / f".write-probe-{uuid.uuid4().hex[:8]}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as fh:
            fh.write(b"x")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise LakeNotWritable(f"finpulse: the lake {root} is not writable ({exc.strerror or exc}); nothing was consumed. "
                         f"Mount it read-write or free space, then start again.") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def commit_patiently(lake, ends: Mapping[str, int], rows: list, retry_s: float = 5.0, report_s: float = 60.0,
                     kept: list | None = None, fences: Mapping[str, int] | None = None) -> int:
    """lake.commit_bundle, waiting out full or read-only storage; other errors propagate.

    Retrying the same commit is safe: a failed Delta commit left no log entry (its half-written
    data files are not in the table, and `lake optimize` vacuums them), and a commit that did
    land is recognised by its transactions, so the retry writes nothing twice.
    """
    waited, last_report = 0.0, None
    what = ", ".join(f"{s}<{e}" for s, e in sorted(ends.items()))
    while True:
        try:
            written = lake.commit_bundle(ends, rows, kept=kept, fences=fences)
            if last_report is not None:
                log.warning("lake %s is writable again after %.0fs; %s committed", lake.root, waited, what)
            return written
        except Exception as exc:  # noqa: BLE001 - delta-rs raises its own error types for I/O failures
            if not storage_unavailable(exc):
                raise
            if last_report is None or waited - last_report >= report_s:
                last_report = waited
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _reason(exc)
                log.error("lake %s cannot be written (%s) committing %s; reading is paused and nothing is "
                          "lost: free space or remount read-write and the stream resumes by itself (retrying every %.0fs)",
                          lake.root, reason, what, retry_s)
            time.sleep(retry_s)
            waited += retry_s


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for known in ("No space left on device", "Read-only file system", "Disk quota exceeded"):
        if known in text:
            return known
    return text.splitlines()[0][:200]


def parquet_problem(path: Path | str, filesystem=None) -> str | None:
    """Why no reader can open this Parquet file (None if it reads end to end)."""
    import pyarrow.parquet as pq

    try:
        pq.read_table(str(path), filesystem=filesystem)
    except Exception as exc:  # noqa: BLE001 - any failure means readers fail on it too
        return f"{type(exc).__name__}: {exc}"
    return None


def check_files(root: str | Path) -> list[tuple[Path | str, str]]:
    """(file, problem) for every unreadable Parquet file in the current version of the lake's tables."""
    from finpulse.pipeline.lake.storage import is_remote
    from finpulse.pipeline.lake.tables import SCHEMAS, object_paths, snapshot

    bad: list[tuple[Path | str, str]] = []
    for table in SCHEMAS:
        files = snapshot(root, table).files
        if is_remote(root):  # s3://bucket/key: read through the lake's pyarrow filesystem
            fs, paths = object_paths(root, files)
            bad += [(f, p) for f, path in zip(files, paths, strict=True) if (p := parquet_problem(path, fs))]
        else:
            bad += [(Path(f), p) for f in files if (p := parquet_problem(f))]
    return bad


def quarantine(root: str | Path, bad: list[tuple[Path | str, str]]) -> list:
    """Move bad files to LAKE/_quarantine/<same relative path>, with a .reason.json beside each,
    then drop them from their tables' logs (delta-rs `repair`: a commit removing missing files)."""
    from finpulse.pipeline.lake.storage import is_remote, open_storage
    from finpulse.pipeline.lake.tables import open_table, table_uri

    if is_remote(root):  # the same on an object store: copy aside with the reason, delete, repair
        storage, moved_remote = open_storage(root), []
        for f, problem in bad:
            rel = str(f).split(table_uri(root, "x").rsplit("/", 1)[0] + "/", 1)[1]
            storage.publish(rel, f"{QUARANTINE}/{rel}")
            storage.put_atomic(f"{QUARANTINE}/{rel}.reason.json", json.dumps({"file": rel, "problem": problem}).encode())
            moved_remote.append(f"{QUARANTINE}/{rel}")
        for table in {str(f).split(table_uri(root, "x").rsplit("/", 1)[0] + "/", 1)[1].split("/")[0] for f, _ in bad}:
            dt = open_table(root, table)
            if dt is not None:
                dt.repair(dry_run=False)
        return moved_remote
    root = Path(root).resolve()
    moved = []
    for f, problem in bad:
        f = Path(f).resolve()
        dst = root / QUARANTINE / f.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, dst)
        dst.with_name(dst.name + ".reason.json").write_text(json.dumps({"file": str(f.relative_to(root)), "problem": problem,
                                                                         "quarantined_at": time.time()}) + "\n")
        log.warning("quarantined %s: %s", f, problem)
        moved.append(dst)
    for table in {Path(f).resolve().relative_to(root).parts[0] for f, _ in bad}:
        dt = open_table(root, table)
        if dt is not None:
            dt.repair(dry_run=False)
    return moved
