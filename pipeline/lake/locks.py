"""The lake's waiting writer lock: one writer of a role at a time, the next one waits its turn.

`LakeStorage.lock` (storage.py) refuses a second writer outright, which is right for a stream or
a backfill. The alert store and its delivery outbox are written by short steps of a follower
that may overlap with a one-shot `finpulse alerts`; there the second writer should wait, not
fail. Locally that is a blocking `flock`, released by the OS if the holder is killed, so a
crash never leaves a stale lock. On an object store there is no flock and no conditional PUT
in pyarrow: the lock is a no-op there, and what it guards must be safe without it (the alerts
table's merge keyed by alert_id; the outbox's append-only segments, read back deduplicated).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from finpulse.pipeline.lake.storage import is_remote


@contextlib.contextmanager
def writer_lock(lake: str | Path, role: str = "alerts") -> Iterator[None]:
    """Hold `LAKE/.<role>.lock` (local lakes) for the duration of the block, waiting if needed."""
    if is_remote(lake):
        yield
        return
    import fcntl

    root = Path(str(lake).removeprefix("file://"))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{role}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


__all__ = ["writer_lock"]
