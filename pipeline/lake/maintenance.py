"""Keeping the lake's tables small in file count: compaction and vacuum, on demand or in the background.

A stream commits about once a second (`--flush-seconds`), so a day adds tens of thousands of
small files; every reader pays per file. `finpulse lake optimize` (and the stream itself, every
`--optimize-every` seconds, in a background thread) runs delta-rs's `optimize.compact()` then
`vacuum`. Both are ordinary Delta commits: compaction never conflicts with appends, so commits
are not blocked, and a reader that listed an older version keeps its files until the vacuum
retention has passed, so a query running during compaction is never broken. Batch jobs
(backfill, rescore) compact what they wrote as they finish (`compact_written`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from finpulse.pipeline.lake import tables

log = logging.getLogger(__name__)

DEFAULT_RETENTION_HOURS = 1.0  # older than any query; time travel further back keeps the log but not the files
DEFAULT_OPTIMIZE_EVERY_S = 600.0


def optimize(root: str | Path, retention_hours: float = DEFAULT_RETENTION_HOURS, cluster: bool = False,
             progress: Callable[[str], None] | None = None) -> dict:
    """Compact (or with `cluster`, z-order by time) then vacuum every table of the lake; per
    table, files before/after and seconds."""
    return tables.optimize(root, retention_hours, cluster=cluster, progress=progress)


def compact_written(root: str | Path, written: Sequence[str] = ("enriched", "deadletter"),
                    progress: Callable[[str], None] | None = None) -> dict:
    """Compact the tables a batch job (backfill, rescore) has just written, as it finishes.

    A batch job commits a file per chunk; compaction merges the files below the target size,
    which are the ones the job wrote (plus a stream's not yet compacted last minutes), and leaves
    full-size files alone, so the cost follows what was written rather than the table's size.
    No vacuum: the files it replaces go at the next `lake optimize` or background optimize, after
    their retention."""
    return tables.optimize(root, only=written, vacuum=False, progress=progress or log.info)


class BackgroundOptimizer:
    """Runs `optimize` every `every` seconds in a daemon thread until `close()`.

    A failure (say the disk is full) is logged and retried at the next interval: compaction is
    an optimisation, never a reason to stop ingesting.
    """

    def __init__(
        self,
        root: str | Path,
        every: float = DEFAULT_OPTIMIZE_EVERY_S,
        retention_hours: float = DEFAULT_RETENTION_HOURS,
    ) -> None:
        self._root, self._every, self._retention = root, every, retention_hours
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lake-optimize")
        self.runs = 0

    def start(self) -> BackgroundOptimizer:
        if self._every > 0:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                result = optimize(self._root, self._retention)
                self.runs += 1
                log.info(
                    "lake %s optimized: %s",
                    self._root,
                    ", ".join(f"{t} {r['files_before']}->{r['files_after']} files" for t, r in result.items()),
                )
            except Exception as exc:  # noqa: BLE001 - retried next interval, ingest goes on
                log.warning("background optimize of %s failed (retried in %.0fs): %s", self._root, self._every, exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
