"""The shared Beam transforms: parse -> enrich -> stories -> lake, used by both `stream` and `backfill`."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from finpulse.models.stages import stage
from finpulse.pipeline.enrich.handler import EnrichError, FinpulseModelHandler, enriched_row
from finpulse.pipeline.enrich.parse import dead_letter, parse_message
from finpulse.pipeline.enrich.stories import StoryConfig, StoryIndex
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.faults import commit_patiently
from finpulse.pipeline.messages import OFFSET_MASK, RawMessage
from finpulse.pipeline.runtime import metrics
from finpulse.schemas.records import DeadLetter

log = logging.getLogger(__name__)


def _date(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d")


@dataclass
class TimedRow(Row):
    """A Row with its Kafka record timestamp, for the end-to-end latency metric (not stored)."""

    event_ms: int | None = None


def dead_row(d: DeadLetter, source: str, position: int, event_ms: int | None = None) -> Row:
    return TimedRow("deadletter", d.model_dump(), source, position, _date(d.ingested_at), event_ms)


class Parse(beam.DoFn):
    """RawMessage -> ((InputRecord | DeadLetter, Coordinates, source, position), text or None).

    Dead letters ride along the same linear chain with no text (the handler passes them through):
    a Flatten would split the fused stage on FnApiRunner and hold every write until the end.
    """

    def __init__(self, max_message_bytes: int, fallback_kind: str = "news") -> None:
        self._max = max_message_bytes
        self._fallback = fallback_kind

    def process(self, msg: RawMessage):
        with stage("parse"):
            result = parse_message(msg.value, msg.coords, self._max, self._fallback)
        text = None if isinstance(result, DeadLetter) else result.text
        yield (result, msg.coords, msg.source, msg.position), text


class ToRow(beam.DoFn):
    """A PredictionResult keyed by its record -> an enriched Row (or a dead letter if inference failed)."""

    def process(self, keyed: tuple[Any, Any]):
        (record, coords, source, position), result = keyed
        ts = coords.timestamp_ms
        if isinstance(record, DeadLetter):
            yield dead_row(record, source, position, ts)
            return
        now = datetime.now(timezone.utc)
        pred = result.inference
        if isinstance(pred, EnrichError):
            raw = record.model_dump_json().encode()
            dead = dead_letter(raw, f"enrichment failed: {pred.error}", "enrich", coords, now)
            yield dead_row(dead, source, position, ts)
            return
        try:
            with stage("rows"):
                row = enriched_row(record, pred, result.model_id, coords, now)
        except Exception as exc:  # noqa: BLE001 - a schema violation must not stop the stream
            raw = record.model_dump_json().encode()
            dead = dead_letter(raw, f"output validation failed: {exc}", "enrich", coords, now)
            yield dead_row(dead, source, position, ts)
            return
        yield TimedRow("enriched", row, source, position, _date(record.published_at or now), ts)


# Beam's own metrics (exported by Dataflow/Flink, where our Prometheus endpoint cannot see workers).
_BEAM_ROWS = {"enriched": Metrics.counter("finpulse", "rows_enriched"),
              "deadletter": Metrics.counter("finpulse", "rows_deadletter")}


class AssignStories(beam.DoFn):
    """Sets story_id / copies_seen / novelty on enriched rows, in the order they arrive (pure logic
    in enrich/stories.py; this is the glue).

    The index is the lake: on start-up it is rebuilt from the committed rows of the last
    `window` (story ids travel with each row), so a restart resumes with the state of its last
    commit and replays the uncommitted rest to the same ids; a replayed id gets its first answer.
    One index per worker process, shared by its bundles under a lock. Several worker processes
    each see only their own rows: see docs/ALERTS.md ("Stories") for what that means.
    """

    _shared: dict[tuple[str, StoryConfig, str | None], StoryIndex] = {}
    _lock = threading.Lock()

    def __init__(self, lake: str, config: StoryConfig | None = None, scope: str | None = None) -> None:
        self._lake_root = lake
        self._config = config or StoryConfig()
        self._scope = scope  # "kafka" or "file": restore only this writer's rows (see committed_story_rows)

    def setup(self) -> None:
        key = (self._lake_root, self._config, self._scope)
        with AssignStories._lock:
            index = AssignStories._shared.get(key)
            if index is None:
                index = AssignStories._shared[key] = StoryIndex(self._config)
                loaded = index.restore(committed_story_rows(self._lake_root, self._config.window, self._scope))
                log.info("story index: %d committed rows of the last %s restored from %s", loaded, self._config.window,
                         self._lake_root)
        self._index = index

    def process(self, row: Row):
        if row.table == "enriched":
            r = row.data
            with AssignStories._lock, stage("stories"):
                a = self._index.assign(r["id"], r["text"], r["published_at"])
            r["story_id"], r["copies_seen"], r["novelty"] = a.story_id, a.copies_seen, a.novelty
        yield row


def committed_story_rows(lake: str, window: timedelta, scope: str | None = None) -> list[tuple]:
    """(id, published_at, text, story_id, copies_seen) of the committed rows within `window` of the newest.

    `scope` "kafka" takes the stream's rows only and "file" the backfill's: a backfill of 2022
    archives into a lake that also holds today's stream must not start from today's rows (its
    index would evict every 2022 post as older than the window)."""
    from finpulse.pipeline.lake.query import connect

    where = {"kafka": "kafka_topic IS NOT NULL", "file": "kafka_topic IS NULL", None: "true"}[scope]
    con = connect(lake)
    try:
        return con.execute(f"""
            WITH scoped AS (SELECT id, published_at, text, story_id, copies_seen FROM enriched WHERE {where})
            SELECT * FROM scoped WHERE published_at >= (SELECT max(published_at) FROM scoped) - to_seconds(?)""",
                           [window.total_seconds()]).fetchall()
    finally:
        con.close()


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
            began = time.perf_counter()
            kept: list[Row] = []  # a replayed range drops its head: count only the rows the commit kept
            written = commit_patiently(self._lake, ends, self._rows, kept=kept)  # waits out a full or read-only lake
            elapsed = time.perf_counter() - began
            log.debug("committed %d rows of %s", written, dict(ends))
            by_source: dict[str, list[Row]] = defaultdict(list)
            for r in kept:
                by_source[r.source].append(r)
                self._counts[r.table] += 1
                _BEAM_ROWS[r.table].inc()
                if r.table == "deadletter":  # by reason too, the label set of the Prometheus counter
                    reason = metrics.dead_letter_reason(r.data.get("error") or "")
                    Metrics.counter("finpulse", "dead_letters_" + reason).inc()
            for source, end in ends.items():  # one commit for all sources: each observes its latency
                offset = end & OFFSET_MASK if source.startswith("kafka.") else None  # log epoch stripped
                rows = by_source.get(source, [])
                metrics.observe_commit(source, offset, elapsed, rows,
                                       [ms for r in rows if (ms := getattr(r, "event_ms", None)) is not None])
                if self._on_commit is not None:
                    self._on_commit(source, end)
            log.debug("bundle committed %d records from %d sources", len(self._rows), len(ends))
            metrics.observe_bundle(len(self._rows))
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
                     fallback_kind: str = "news", on_commit=None, stories: StoryConfig | None = None,
                     story_scope: str | None = None):
    """RawMessages -> parsed -> enriched -> lake, one linear fused chain. Every message ends as one row."""
    return (
        messages
        | "Parse" >> beam.ParDo(Parse(max_message_bytes, fallback_kind))
        | "Enrich" >> RunInference(KeyedModelHandler(handler))
        | "ToRow" >> beam.ParDo(ToRow())
        | "Stories" >> beam.ParDo(AssignStories(lake, stories, story_scope))
        | "WriteLake" >> beam.ParDo(WriteToLake(lake, on_commit))
    )
