"""Storage faults of the lake: full or read-only storage, and corrupt Parquet files.

A full or read-only lake is a condition to wait out, not a crash: `commit_patiently` keeps
retrying the same commit (the source is not read meanwhile, so nothing is buffered and
nothing is lost) and says what is wrong once a minute. A lake that is not writable at start-up
stops the stream before it consumes anything. `check_files` finds Parquet files no reader can
open, and `quarantine` moves them out of the views (LAKE/_quarantine/, with the reason).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import uuid
from pathlib import Path
from finpulse.schemas.errors import LakeNotWritable

log = logging.getLogger(__name__)

STORAGE_UNAVAILABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
QUARANTINE = "_quarantine"
TABLE_DIRS = ("enriched", "deadletter", "alerts")


def storage_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in STORAGE_UNAVAILABLE


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
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass


def discard_attempt(lake, source: str, end: int) -> None:
    """Remove the staged files a failed commit of `source` up to `end` left behind (its batch folders).

    Each batch folder belongs to one commit call, so removing the folders holding this attempt's
    files touches no other writer's work.
    """
    suffix = f"-{source}-"
    tail = f"-{end:012d}.parquet"
    for rel in lake.storage.list(f"_staging/{source}", ".parquet"):  # staging is kept per source
        name = rel.rsplit("/", 1)[-1]
        if suffix in name and name.endswith(tail):
            lake.storage.remove_tree(rel.rsplit("/", 1)[0])


def commit_patiently(lake, source: str, start: int, end: int, rows: list, retry_s: float = 5.0, report_s: float = 60.0) -> int:
    """lake.commit, waiting out full or read-only storage; other errors propagate.

    Retrying the same commit is safe: the commit is idempotent (rows below the recorded end are
    dropped), and an attempt that failed after its commit point is published by the next one.
    """
    waited, last_report = 0.0, None
    while True:
        try:
            written = lake.commit(source, start, end, rows)
            if last_report is not None:
                log.warning("lake %s is writable again after %.0fs; %s [%d, %d) committed", lake.root, waited, source, start, end)
            return written
        except OSError as exc:
            if not storage_unavailable(exc):
                raise
            try:
                discard_attempt(lake, source, end)
            except OSError:
                pass
            if last_report is None or waited - last_report >= report_s:
                last_report = waited
                log.error("lake %s cannot be written (%s) committing %s [%d, %d); reading is paused and nothing is "
                          "lost: free space or remount read-write and the stream resumes by itself (retrying every %.0fs)",
                          lake.root, exc.strerror or exc, source, start, end, retry_s)
            time.sleep(retry_s)
            waited += retry_s


def parquet_problem(path: Path) -> str | None:
    """Why no reader can open this Parquet file (None if it reads end to end)."""
    import pyarrow.parquet as pq

    try:
        pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any failure means readers fail on it too
        return f"{type(exc).__name__}: {exc}"
    return None


def check_files(root: str | Path) -> list[tuple[Path, str]]:
    """(file, problem) for every unreadable Parquet file in the lake's tables."""
    root = Path(root)
    bad = []
    for table in TABLE_DIRS:
        for f in sorted((root / table).rglob("*.parquet")) if (root / table).is_dir() else []:
            problem = parquet_problem(f)
            if problem:
                bad.append((f, problem))
    return bad


def quarantine(root: str | Path, bad: list[tuple[Path, str]]) -> list[Path]:
    """Move bad files to LAKE/_quarantine/<same relative path>, with a .reason.json beside each."""
    root = Path(root)
    moved = []
    for f, problem in bad:
        dst = root / QUARANTINE / f.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, dst)
        dst.with_name(dst.name + ".reason.json").write_text(json.dumps({"file": str(f.relative_to(root)), "problem": problem,
                                                                         "quarantined_at": time.time()}) + "\n")
        log.warning("quarantined %s: %s", f, problem)
        moved.append(dst)
    return moved
