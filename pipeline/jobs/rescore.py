"""`finpulse rescore`: re-enrich rows already in the lake with another model version, into the same table.

The archive being rescored is the lake itself: each post's text and metadata are in `enriched`.
Rows published in [since, until) are read from the table's current version (one row per id: the
newest model's), enriched again with the registry's models, and appended with the new
`model_version`; the old rows stay, so `finpulse query --as-of` before the rescore, or
`--model-version OLD`, still shows the old labels, and the dashboard can compare the two.
Readers see one row per id and model; by default the newest model's (lake/query.py).

How it spreads: the rows still to do are cut, in (publication time, id) order, into chunks of
`chunk` rows; a chunk travels as its first and last key only, and the worker that runs it reads
its rows from the lake itself, so neither the plan nor a Dask graph carries the texts. Chunks
run as one Beam ParDo on the local runner (`--workers N`) or on a Dask cluster (`--runner
dask`, runtime/dask_runner.py): the same transform on both, loading the models once per worker
process (enrich/handler.py's cache).

Exactly-once: a chunk reads only ids that have no row of this model version yet, and writes its
rows in ONE commit. So a chunk re-run after its worker died, or a whole rescore re-run after a
crash, finds the ids already written and does not write them again; a finished rescore re-run
writes nothing. (No Delta transaction id per chunk: nothing would read it, and every id would stay
in every checkpoint of the table's log for good.) When it
ends, the chunks' files are compacted (time order in, time order out).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam

from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.maintenance import compact_written
from finpulse.pipeline.lake.query import run_query
from finpulse.pipeline.runtime import dask_runner
from finpulse.pipeline.runtime.settings import InferenceSettings

log = logging.getLogger(__name__)

# the columns of an enriched row that a rescore keeps; the rest is the new model's reading
KEPT = ("id", "text", "kind", "source", "published_at", "title", "url", "author", "lang", "tickers")


@dataclass(frozen=True)
class RescoreChunk:
    """Rows [first, last] (by (published_at, id)) of the lake still to rescore with `version`."""

    version: str
    first: tuple[datetime, str]
    last: tuple[datetime, str]
    rows: int


def _todo(version: str, since: datetime | None, until: datetime | None) -> tuple[str, list[object]]:
    """WHERE clause and parameters: rows in [since, until) with no row of `version` yet."""
    where: list[str] = ["id NOT IN (SELECT id FROM enriched_versions WHERE model_version = ?)"]
    params: list[object] = [version]
    if since:
        where.append("published_at >= ?")
        params.append(since)
    if until:
        where.append("published_at < ?")
        params.append(until)
    return " AND ".join(where), params


def plan_rescore(lake: str | Path, version: str, since: datetime | None, until: datetime | None,
                 chunk: int) -> list[RescoreChunk]:
    """The chunks of rows still to rescore, in (published_at, id) order: keys only, no texts."""
    if tables.open_table(lake, "enriched") is None:
        return []
    where, params = _todo(version, since, until)
    keys = run_query(lake, f"SELECT published_at, id FROM enriched WHERE {where} ORDER BY published_at, id",
                     params).to_pylist()
    plan = []
    for i in range(0, len(keys), chunk):
        part = keys[i : i + chunk]
        plan.append(RescoreChunk(version, (part[0]["published_at"], part[0]["id"]),
                                 (part[-1]["published_at"], part[-1]["id"]), len(part)))
    return plan


def rescore_chunk(lake: str | Path, chunk: RescoreChunk, enricher) -> int:
    """Read `chunk`'s rows that still lack its version, enrich them, append them in one commit; rows written."""
    from finpulse.pipeline.enrich.parse import Coordinates
    from finpulse.pipeline.enrich.rows import enriched_row
    from finpulse.schemas.records import InputRecord

    where, params = _todo(chunk.version, None, None)
    sql = (f"SELECT * FROM enriched WHERE {where} AND (published_at, id) >= (?, ?) AND (published_at, id) <= (?, ?) "
           "ORDER BY published_at, id")
    rows = run_query(lake, sql, [*params, *chunk.first, *chunk.last]).to_pylist()
    if not rows:  # a re-run of a chunk that committed: its ids have rows of this version now
        return 0
    preds = enricher.predict([r["text"] for r in rows])
    now = datetime.now(timezone.utc)
    out = [
        enriched_row(InputRecord(**{k: r[k] for k in KEPT}), pred, chunk.version,
                     Coordinates(topic=r["kafka_topic"], partition=r["kafka_partition"], offset=r["kafka_offset"]), now)
        for r, pred in zip(rows, preds, strict=True)
    ]
    data = tables.rows_table("enriched", out, [f"{r['published_at']:%Y-%m-%d}" for r in out])
    tables.append(lake, "enriched", data, None, {"finpulse.op": "rescore", "finpulse.model_version": chunk.version})
    log.info("rescored %d rows (%s .. %s)", len(out), chunk.first[1], chunk.last[1])
    return len(out)


class RescoreChunks(beam.DoFn):
    """Each chunk through `rescore_chunk`, with the models loaded once per worker process."""

    def __init__(self, lake: str, registry: str | None, settings: InferenceSettings) -> None:
        self._lake, self._registry, self._settings = lake, registry, settings

    def setup(self) -> None:
        from finpulse.pipeline.enrich.handler import FinpulseModelHandler

        self._enricher = FinpulseModelHandler(self._registry, self._settings).load_model()

    def process(self, chunk: RescoreChunk):
        yield rescore_chunk(self._lake, chunk, self._enricher)


def _rows_of(lake: str | Path, version: str, since: datetime | None, until: datetime | None) -> int:
    """Rows of `version` in [since, until): what the progress bar and the summary count."""
    where: list[str] = ["model_version = ?"]
    params: list[object] = [version]
    for clause, value in (("published_at >= ?", since), ("published_at < ?", until)):
        if value:
            where.append(clause)
            params.append(value)
    sql = f"SELECT count(*) AS n FROM enriched_versions WHERE {' AND '.join(where)}"
    return run_query(lake, sql, params).to_pylist()[0]["n"]


def rescore(
    lake: str | Path,
    registry: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    device: str = "cpu",
    chunk: int = 2000,
    precision: str = "auto",
    beam_args: list[str] | None = None,
    dask_address: str | None = None,
    progress: bool = False,
) -> dict:
    """Rescore the lake's posts in [since, until) with `registry`'s models; `dask_address`
    (tcp://host:port of a Dask scheduler) runs the chunks on that cluster. Returns counts."""
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.pipeline.jobs.batch import batch_pipeline, lake_progress
    from finpulse.pipeline.runtime.settings import load_settings

    version = load_registry(registry).model_version
    plan = plan_rescore(lake, version, since, until, chunk)
    if not plan:
        return {"model_version": version, "rescored": 0, "chunks": 0, "compacted": {}}
    dt = tables.open_table(lake, "enriched")
    if dt is not None and dt.metadata().configuration.get(tables.RESCORED_PROPERTY) != "true":
        # before the first new row: from here on readers pick one model version per id
        dt.alter.set_table_properties({tables.RESCORED_PROPERTY: "true"}, raise_if_not_exists=False)
    settings = dataclasses.replace(load_settings().inference, device=device, precision=precision)
    before = _rows_of(lake, version, since, until)
    total = before + sum(c.rows for c in plan)
    with lake_progress("rescore", total, lambda: _rows_of(lake, version, since, until), progress):
        p = batch_pipeline(str(lake), len(plan), beam_args, dask_address)
        _ = p | "Chunks" >> beam.Create(plan) | "Rescore" >> beam.ParDo(RescoreChunks(str(lake), registry, settings))
        dask_runner.run(p)
    written = _rows_of(lake, version, since, until) - before
    # a file per chunk committed: compact them (chunks are in time order, so the merge is too)
    compacted = compact_written(lake, ("enriched",)) if written else {}
    return {"model_version": version, "rescored": written, "chunks": len(plan), "compacted": compacted}
