"""`finpulse backfill`: archived JSONL/CSV/Parquet through the same parse/enrich/write transforms.

Each file is one source with a bounded restriction [lake position, row count). The splittable
DoFn reads `chunk` rows per call and defers the rest, so every chunk is committed on its own:
memory stays flat, a crash loses at most one chunk of work, and a re-run skips what is done.
"""

from __future__ import annotations

import glob as globlib
import logging
import threading
from dataclasses import dataclass
import sys
from pathlib import Path

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.core import RestrictionProvider

from finpulse.pipeline.runtime.settings import InferenceSettings
from finpulse.models.artifacts.preflight import check_models
from finpulse.pipeline.enrich.handler import FinpulseModelHandler
from finpulse.pipeline.jobs.stream import pipeline_options, resolve_device
from finpulse.pipeline.jobs.transforms import enrich_and_write
from finpulse.pipeline.lake.commit import Lake
from finpulse.pipeline.messages import Coordinates, RawMessage
from finpulse.pipeline.sources.archive import archive_format, archive_key, count_rows, read_slice
from finpulse.pipeline.sources.restrictions import CheckpointOnlyTracker
from finpulse.schemas.errors import NoInputFiles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveFile:
    path: str
    rows: int


class ReadArchive(beam.DoFn, RestrictionProvider):
    def __init__(self, lake: str, chunk: int) -> None:
        self._lake = lake
        self._chunk = chunk

    def initial_restriction(self, element: ArchiveFile) -> OffsetRange:
        start = min(Lake(self._lake).committed(archive_key(element.path)), element.rows)
        return OffsetRange(start, element.rows)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return CheckpointOnlyTracker(restriction)

    def restriction_size(self, element, restriction: OffsetRange) -> int:
        return restriction.size()

    def split(self, element, restriction):
        yield restriction

    def process(self, element: ArchiveFile, tracker=beam.DoFn.RestrictionParam()):
        r = tracker.current_restriction()
        stop = min(r.stop, r.start + self._chunk)
        last = r.start - 1
        source = archive_key(element.path)
        for i, raw in read_slice(element.path, r.start, stop):
            if not tracker.try_claim(i):
                return
            last = i
            yield RawMessage(Coordinates(source_ref=element.path, source_row=i), raw, source, i)
        if stop < r.stop:
            tracker.defer_remainder()
        elif last < r.stop - 1:  # the file shrank since it was counted: finish the range anyway
            tracker.try_claim(r.stop - 1)


def expand_inputs(pattern: str) -> list[str]:
    files = sorted({str(Path(p).resolve()) for part in pattern.split(",") for p in globlib.glob(part, recursive=True)})
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise NoInputFiles(f"finpulse backfill: no files match {pattern!r}")
    for f in files:
        archive_format(f)  # fail early on unsupported types
    return files


def _progress_bar(lake: Lake, files: list[ArchiveFile], done: threading.Event) -> None:
    from tqdm import tqdm

    total = sum(f.rows for f in files)
    keys = [(archive_key(f.path), f.rows) for f in files]
    with tqdm(total=total, unit="rows", desc="backfill", mininterval=1) as bar:
        while True:
            committed = lake.all_committed(k for k, _ in keys)
            bar.n = sum(min(committed.get(k, 0), n) for k, n in keys)
            bar.refresh()
            if done.wait(1.0):
                committed = lake.all_committed(k for k, _ in keys)
                bar.n = sum(min(committed.get(k, 0), n) for k, n in keys)
                bar.refresh()
                return


def run_backfill(pattern: str, lake_root: str, registry: str | None = None, device: str = "auto", chunk: int = 2000,
                 precision: str = "auto",
                 fallback_kind: str = "news", max_message_bytes: int = 1024 * 1024, beam_args: list[str] | None = None,
                 progress: bool = True, shared_model: bool | None = None) -> dict:
    check_models(registry)
    options, runner = pipeline_options(beam_args, lake_root)
    lake = Lake(lake_root)
    files = [ArchiveFile(p, count_rows(p)) for p in expand_inputs(pattern)]
    before = lake.all_committed(archive_key(f.path) for f in files)
    handler = FinpulseModelHandler(registry, InferenceSettings(device=resolve_device(device), precision=precision),
                                   batch_size=min(chunk, 512), large_model=shared_model)
    done = threading.Event()
    bar = threading.Thread(target=_progress_bar, args=(lake, files, done), daemon=True) if progress else None
    if bar:
        bar.start()
    try:
        with beam.Pipeline(runner=runner, options=options) as p:
            messages = p | "Files" >> beam.Create(files) | "ReadArchive" >> beam.ParDo(ReadArchive(lake_root, chunk))
            enrich_and_write(messages, lake_root, handler, max_message_bytes, fallback_kind, story_scope="file")
    finally:
        done.set()
        if bar:
            bar.join()
    after = lake.all_committed(archive_key(f.path) for f in files)
    return {
        "files": len(files),
        "rows": sum(f.rows for f in files),
        "processed": sum(after[k] - before[k] for k in after),
        "skipped_already_done": sum(min(before[archive_key(f.path)], f.rows) for f in files),
    }
