"""The shared Beam transforms: parse -> enrich -> lake, used by both `stream` and `backfill`."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from finpulse.pipeline.enrich.handler import EnrichError, FinpulseModelHandler, enriched_row
from finpulse.pipeline.messages import RawMessage
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.faults import commit_patiently
from finpulse.pipeline.enrich.parse import dead_letter, parse_message
from finpulse.schemas.records import DeadLetter

log = logging.getLogger(__name__)


def _date(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d")


def dead_row(d: DeadLetter, source: str, position: int) -> Row:
    return Row("deadletter", d.model_dump(), source, position, _date(d.ingested_at))


class Parse(beam.DoFn):
    """RawMessage -> ((InputRecord | DeadLetter, Coordinates, source, position), text or None).

    Dead letters ride along the same linear chain with no text (the handler passes them through):
    a Flatten would split the fused stage on FnApiRunner and hold every write until the end.
    """

    def __init__(self, max_message_bytes: int, fallback_kind: str = "news") -> None:
        self._max = max_message_bytes
        self._fallback = fallback_kind

    def process(self, msg: RawMessage):
        result = parse_message(msg.value, msg.coords, self._max, self._fallback)
        text = None if isinstance(result, DeadLetter) else result.text
        yield (result, msg.coords, msg.source, msg.position), text


class ToRow(beam.DoFn):
    """A PredictionResult keyed by its record -> an enriched Row (or a dead letter if inference failed)."""

    def process(self, keyed: tuple[Any, Any]):
        (record, coords, source, position), result = keyed
        if isinstance(record, DeadLetter):
            yield dead_row(record, source, position)
            return
        now = datetime.now(timezone.utc)
        pred = result.inference
        if isinstance(pred, EnrichError):
            raw = record.model_dump_json().encode()
            yield dead_row(dead_letter(raw, f"enrichment failed: {pred.error}", "enrich", coords, now), source, position)
            return
        try:
            row = enriched_row(record, pred, result.model_id, coords, now)
        except Exception as exc:  # noqa: BLE001 - a schema violation must not stop the stream
            raw = record.model_dump_json().encode()
            yield dead_row(dead_letter(raw, f"output validation failed: {exc}", "enrich", coords, now), source, position)
            return
        yield Row("enriched", row, source, position, _date(record.published_at or now))


class WriteToLake(beam.DoFn):
    """Buffers a bundle's rows and commits them at the end of the bundle: one Delta commit per
    table for all the bundle's sources, each carrying its source's end position (see lake/commit.py).

    Logs one progress line every `report_every` seconds (rows, dead letters, rate) at INFO and
    each commit at DEBUG, so an operator sees a live stream without drowning in lines.
    """

    def __init__(self, lake: str, on_commit=None, report_every: float = 30.0) -> None:
        self._lake_root = lake
        self._on_commit = on_commit
        self._report_every = report_every

    def setup(self) -> None:
        import time

        self._lake = Lake(self._lake_root)
        self._since = time.monotonic()
        self._counts = {"enriched": 0, "deadletter": 0}

    def start_bundle(self) -> None:
        self._rows: list[Row] = []

    def process(self, row: Row):
        self._rows.append(row)

    def finish_bundle(self):
        if self._rows:
            ends: dict[str, int] = defaultdict(int)
            for r in self._rows:
                ends[r.source] = max(ends[r.source], r.position + 1)
            written = commit_patiently(self._lake, ends, self._rows)  # waits out a full or read-only lake
            log.debug("committed %d rows of %s", written, dict(ends))
            for r in self._rows:
                self._counts[r.table] += 1
            if self._on_commit is not None:
                for source, end in ends.items():
                    self._on_commit(source, end)
        self._rows = []
        self._report()

    def _report(self) -> None:
        import time

        elapsed = time.monotonic() - self._since
        if elapsed < self._report_every:
            return
        n, dead = self._counts["enriched"], self._counts["deadletter"]
        log.info("lake %s: +%d enriched, +%d dead letters in the last %.0fs (%.1f rows/s)",
                 self._lake_root, n, dead, elapsed, (n + dead) / elapsed)
        self._since, self._counts = time.monotonic(), {"enriched": 0, "deadletter": 0}


def enrich_and_write(messages, lake: str, handler: FinpulseModelHandler, max_message_bytes: int,
                     fallback_kind: str = "news", on_commit=None):
    """RawMessages -> parsed -> enriched -> lake, one linear fused chain. Every message ends as one row."""
    return (
        messages
        | "Parse" >> beam.ParDo(Parse(max_message_bytes, fallback_kind))
        | "Enrich" >> RunInference(KeyedModelHandler(handler))
        | "ToRow" >> beam.ParDo(ToRow())
        | "WriteLake" >> beam.ParDo(WriteToLake(lake, on_commit))
    )
