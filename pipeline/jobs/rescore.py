"""`finpulse rescore`: re-enrich rows already in the lake with another model version, into the same table.

The archive being rescored is the lake itself: each post's text and metadata are in `enriched`.
Rows published in [since, until) are read from the table's current version (one row per id: the
newest model's), enriched again with the registry's models, and appended with the new
`model_version`; the old rows stay, so `finpulse query --as-of` before the rescore, or
`--model-version OLD`, still shows the old labels, and the dashboard can compare the two.
Readers see one row per id and model; by default the newest model's (lake/query.py).

Exactly-once: rows are taken in (publication time, id) order in chunks, and each chunk's commit
carries a Delta transaction `rescore:<model version>:<range>` = chunk number, so a killed rescore
resumes at the next chunk, and a finished one re-run writes nothing. Ids that already have a row
of this model version are skipped. When it ends, the chunks' files are compacted (time order in,
time order out).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone
from pathlib import Path

from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.maintenance import compact_written
from finpulse.pipeline.lake.query import run_query

log = logging.getLogger(__name__)


def _app_id(model_version: str, since: datetime | None, until: datetime | None) -> str:
    span = f"{since.isoformat() if since else '-'}..{until.isoformat() if until else '-'}"
    return f"rescore:{model_version}:{span}"


def rescore(
    lake: str | Path,
    registry: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    device: str = "cpu",
    chunk: int = 2000,
) -> dict:
    """Rescore the lake's posts in [since, until) with `registry`'s models; returns counts."""
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.pipeline.enrich.parse import Coordinates
    from finpulse.pipeline.enrich.rows import enriched_row
    from finpulse.pipeline.runtime.settings import load_settings
    from finpulse.schemas.records import InputRecord

    reg = load_registry(registry)
    version = reg.model_version
    where: list[str] = ["id NOT IN (SELECT id FROM enriched_versions WHERE model_version = ?)"]
    params: list[object] = [version]
    if since:
        where.append("published_at >= ?")
        params.append(since)
    if until:
        where.append("published_at < ?")
        params.append(until)
    # in time order, so each chunk's file (and their compaction) covers a span of time
    sql = f"SELECT * FROM enriched WHERE {' AND '.join(where)} ORDER BY published_at, id"
    todo = run_query(lake, sql, params).to_pylist()
    app = _app_id(version, since, until)
    dt = tables.open_table(lake, "enriched")
    done_chunks = (dt.transaction_version(app) or 0) if dt is not None else 0
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    # a resumed run re-reads `todo` without the ids its earlier chunks wrote: number chunks on
    # from the recorded one rather than skipping any
    enricher = Enricher(reg, dataclasses.replace(load_settings().inference, device=device))
    if chunks and dt is not None and dt.metadata().configuration.get(tables.RESCORED_PROPERTY) != "true":
        # before the first new row: from here on readers pick one model version per id
        dt.alter.set_table_properties({tables.RESCORED_PROPERTY: "true"}, raise_if_not_exists=False)
    written = 0
    for n, rows in enumerate(chunks, start=done_chunks + 1):
        preds = enricher.predict([r["text"] for r in rows])
        now = datetime.now(timezone.utc)
        out = []
        for r, pred in zip(rows, preds, strict=True):
            record = InputRecord(
                **{
                    k: r[k]
                    for k in (
                        "id",
                        "text",
                        "kind",
                        "source",
                        "published_at",
                        "title",
                        "url",
                        "author",
                        "lang",
                        "tickers",
                    )
                }
            )
            coords = Coordinates(topic=r["kafka_topic"], partition=r["kafka_partition"], offset=r["kafka_offset"])
            out.append(enriched_row(record, pred, version, coords, now))
        data = tables.rows_table("enriched", out, [f"{r['published_at']:%Y-%m-%d}" for r in out])
        tables.append(lake, "enriched", data, {app: n}, {"finpulse.op": "rescore", "finpulse.model_version": version})
        written += len(out)
        log.info("rescored %d/%d rows with %s", written, len(todo), version)
    # a file per chunk committed: compact them (chunks are in time order, so the merge is too)
    compacted = compact_written(lake, ("enriched",)) if written else {}
    return {"model_version": version, "rescored": written, "chunks": len(chunks), "compacted": compacted}
