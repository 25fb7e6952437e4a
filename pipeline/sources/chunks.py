"""Archive files cut into chunks, each chunk its own lake source, planned against the lake.

Why chunks are sources: a backfill must spread over workers (Beam's local workers, or a Dask
cluster) and still commit exactly once. One source per file forced one reader per file in order,
which needed a splittable DoFn, and Beam's DaskRunner runs no splittable DoFns (it translates
Create, ParDo, GroupByKey and Flatten only). A chunk of rows [start, stop) of a file is source
`file.<hash>.<start>` with its own Delta transaction (version = the next row to commit), so
chunks commit independently, in any order, on any worker; a task that re-runs after its worker
died resumes at its chunk's recorded row, and the rows below it are dropped by the commit.

The grid (rows per chunk) is fixed per file the first time a backfill plans it: it is recorded in
the lake as transaction `file.<hash>.grid` = rows per chunk, so a later run with another `--chunk`
still finds the chunks already done instead of reading them again. Files progressed by the
earlier one-source-per-file reader (transaction `file.<hash>` = rows done) count as done up to
that row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam

from finpulse.pipeline.lake.commit import Lake
from finpulse.pipeline.messages import Coordinates, RawMessage
from finpulse.pipeline.sources.archive import archive_key, iter_rows


@dataclass(frozen=True)
class ArchiveChunk:
    """Rows [start, stop) of one archive file still to commit; `source` is the chunk's lake source."""

    path: str
    source: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def chunk_source(path: str, first_row: int) -> str:
    return f"{archive_key(path)}.{first_row}"


def grid_key(path: str) -> str:
    return f"{archive_key(path)}.grid"


def chunk_bounds(rows: int, grid: int) -> list[tuple[int, int]]:
    """[start, stop) of each chunk of a file of `rows` rows cut every `grid` rows."""
    return [(s, min(rows, s + grid)) for s in range(0, rows, grid)]


def plan_chunks(lake: Lake, files: Sequence[tuple[str, int]], chunk: int) -> tuple[list[ArchiveChunk], dict[str, int]]:
    """The chunks of `files` ((path, row count) each) still to commit, and the grid of each file.

    Files with no recorded grid get `chunk`; the caller records it (`record_grids`) before any
    chunk commits."""
    grids_seen = lake.all_committed(grid_key(p) for p, _ in files)
    grids = {p: grids_seen[grid_key(p)] or chunk for p, _ in files}
    bounds = {p: chunk_bounds(n, grids[p]) for p, n in files}
    keys = [archive_key(p) for p, _ in files] + [chunk_source(p, s) for p, b in bounds.items() for s, _ in b]
    done = lake.all_committed(keys)
    plan = []
    for path, _ in files:
        whole_file = done[archive_key(path)]  # the earlier one-source-per-file reader's progress
        for start, stop in bounds[path]:
            begin = max(start, whole_file, done[chunk_source(path, start)])
            if begin < stop:
                plan.append(ArchiveChunk(path, chunk_source(path, start), begin, stop))
    return plan, grids


def committed_rows(lake: Lake, files: Sequence[tuple[str, int]], grids: dict[str, int]) -> int:
    """Rows of `files` in the lake (for progress and the run's summary)."""
    bounds = {p: chunk_bounds(n, grids[p]) for p, n in files}
    done = lake.all_committed([archive_key(p) for p, _ in files]
                              + [chunk_source(p, s) for p, b in bounds.items() for s, _ in b])
    total = 0
    for path, _ in files:
        whole_file = done[archive_key(path)]
        for start, stop in bounds[path]:
            total += min(stop, max(start, whole_file, done[chunk_source(path, start)])) - start
    return total


def record_grids(lake: Lake, grids: dict[str, int]) -> None:
    """One commit recording the grid of files that have none yet (no rows: transactions only)."""
    new = {grid_key(p): g for p, g in grids.items()}
    seen = lake.all_committed(new)
    todo = {k: g for k, g in new.items() if seen[k] == 0}
    if todo:
        lake.mark(todo, "backfill-plan")


class ReadArchiveChunk(beam.DoFn):
    """ArchiveChunk -> its rows as RawMessages, in row order.

    A plain DoFn (no restriction, no side input, no state), so the same stage runs on FnApiRunner,
    the portable runners and Beam's DaskRunner. The rows of a chunk arrive at the commit in
    order, and WriteToLake commits every `flush_rows` rows, so memory per worker stays at about one
    chunk's rows in flight whatever the chunk count."""

    def process(self, chunk: ArchiveChunk) -> Iterator[RawMessage]:
        for i, raw in iter_rows(chunk.path, chunk.start):
            if i >= chunk.stop:
                break
            yield RawMessage(Coordinates(source_ref=chunk.path, source_row=i), raw, chunk.source, i)
