"""`finpulse backfill`: archived JSONL/CSV/Parquet through the same parse/enrich/write transforms.

Each file is cut into chunks of `chunk` rows, and each chunk is a lake source of its own
(sources/chunks.py): chunks commit independently, so they spread over Beam's local workers or a
Dask cluster (`--runner dask`, runtime/dask_runner.py) with the same transforms, memory stays at
about a chunk per worker, a crash loses at most the chunks in flight, and a re-run (or a Dask task
re-run after its worker died) skips what is committed.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam

from finpulse.models.artifacts.preflight import check_models
from finpulse.pipeline.enrich.handler import FinpulseModelHandler
from finpulse.pipeline.jobs.batch import batch_pipeline, lake_progress
from finpulse.pipeline.jobs.stream import resolve_device
from finpulse.pipeline.jobs.transforms import enrich_and_write
from finpulse.pipeline.lake.commit import Lake
from finpulse.pipeline.lake.maintenance import compact_written
from finpulse.pipeline.runtime import dask_runner
from finpulse.pipeline.runtime.settings import load_settings
from finpulse.pipeline.sources.archive import archive_format, count_rows
from finpulse.pipeline.sources.chunks import ReadArchiveChunk, committed_rows, plan_chunks, record_grids
from finpulse.schemas.errors import NoInputFiles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveFile:
    path: str
    rows: int


def expand_inputs(pattern: str) -> list[str]:
    files = sorted({str(Path(p).resolve()) for part in pattern.split(",") for p in globlib.glob(part, recursive=True)})
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise NoInputFiles(f"finpulse backfill: no files match {pattern!r}")
    for f in files:
        archive_format(f)  # fail early on unsupported types
    return files


def run_backfill(pattern: str, lake_root: str, registry: str | None = None, device: str = "auto", chunk: int = 2000,
                 precision: str = "auto",
                 fallback_kind: str = "news", max_message_bytes: int = 1024 * 1024, beam_args: list[str] | None = None,
                 progress: bool = True, shared_model: bool | None = None, dask_address: str | None = None) -> dict:
    """Backfill the files matching `pattern`; `dask_address` (tcp://host:port of a Dask scheduler)
    runs the same pipeline on Beam's DaskRunner over that cluster."""
    check_models(registry)
    lake = Lake(lake_root)
    files = [ArchiveFile(p, count_rows(p)) for p in expand_inputs(pattern)]
    sizes = [(f.path, f.rows) for f in files]
    plan, grids = plan_chunks(lake, sizes, chunk)
    record_grids(lake, grids)  # before any chunk commits: a later run cuts these files the same way
    before = committed_rows(lake, sizes, grids)
    inference = dataclasses.replace(load_settings().inference, device=resolve_device(device), precision=precision)
    handler = FinpulseModelHandler(registry, inference,
                                   batch_size=min(chunk, 512), large_model=shared_model)
    with lake_progress("backfill", sum(f.rows for f in files), lambda: committed_rows(lake, sizes, grids), progress):
        if plan:
            p = batch_pipeline(lake_root, len(plan), beam_args, dask_address)
            messages = p | "Chunks" >> beam.Create(plan) | "ReadArchive" >> beam.ParDo(ReadArchiveChunk())
            enrich_and_write(messages, lake_root, handler, max_message_bytes, fallback_kind, story_scope="file",
                             flush_rows=chunk)
            dask_runner.run(p)
    after = committed_rows(lake, sizes, grids)
    # a file per chunk committed: leave the tables compact, not a file per chunk (lake/maintenance.py)
    # nothing new (a re-run of finished files): leave the tables, a running stream's files included, alone
    compacted = {} if after == before else compact_written(lake_root, progress=_stderr if progress else None)
    return {
        "files": len(files),
        "rows": sum(f.rows for f in files),
        "processed": after - before,
        "skipped_already_done": before,
        "compacted": compacted,
    }


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
