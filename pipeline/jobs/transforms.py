"""The shared Beam transforms: parse -> enrich -> stories -> lake, used by both `stream` and `backfill`."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from finpulse.pipeline.enrich.handler import EnrichError, FinpulseModelHandler
from finpulse.pipeline.enrich.parse import dead_letter, parse_message
from finpulse.pipeline.enrich.rows import enriched_row, enriched_table
from finpulse.pipeline.enrich.stories import StoryIndex
from finpulse.pipeline.lake.commit import Block, Lake, Row, as_blocks
from finpulse.pipeline.lake.faults import commit_patiently
from finpulse.pipeline.messages import OFFSET_MASK, Coordinates, RawMessage
from finpulse.pipeline.runtime import metrics
from finpulse.pipeline.runtime.settings import StoryConfig, load_settings
from finpulse.pipeline.runtime.stages import stage
from finpulse.pipeline.sources.membership import Assignment
from finpulse.schemas.records import DeadLetter, InputRecord

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


# Beam's own metrics (exported by Dataflow/Flink, where our Prometheus endpoint cannot see workers).
_BEAM_ROWS = {"enriched": Metrics.counter("finpulse", "rows_enriched"),
              "deadletter": Metrics.counter("finpulse", "rows_deadletter")}


def bundle_blocks(items: list[tuple[Any, Any]], now: datetime) -> tuple[Block | None, list[Row]]:
    """A bundle's keyed inference results -> (the enriched rows as one Block, the dead letters).

    Dead letters: messages that failed parsing (they ride along with no text), texts the engine
    could not process, and rows that break the lake schema (enrich/rows.violations). If the
    bundle's columns cannot be built at all, each row is built and validated on its own, so one
    bad row costs only itself."""
    dead: list[Row] = []
    good: list[tuple[InputRecord, Any, Coordinates, str, int]] = []
    for (record, coords, source, position), result in items:
        ts = coords.timestamp_ms
        if isinstance(record, DeadLetter):
            dead.append(dead_row(record, source, position, ts))
        elif isinstance(result.inference, EnrichError):
            raw = record.model_dump_json().encode()
            failed = dead_letter(raw, f"enrichment failed: {result.inference.error}", "enrich", coords, now)
            dead.append(dead_row(failed, source, position, ts))
        else:
            good.append((record, result.inference, coords, source, position))
    if not good:
        return None, dead
    version = items[0][1].model_id
    records, preds, coords = [g[0] for g in good], [g[1] for g in good], [g[2] for g in good]
    try:
        with stage("rows"):
            data, bad = enriched_table(records, preds, version, coords, now)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        log.warning("a bundle's rows could not be built as columns (%s); validating them one by one", exc)
        return _row_by_row(good, version, now, dead)
    keep = [i not in bad for i in range(len(good))]
    for i, reason in sorted(bad.items()):
        record, _, c, source, position = good[i]
        failed = dead_letter(record.model_dump_json().encode(), f"output validation failed: {reason}", "enrich", c, now)
        dead.append(dead_row(failed, source, position, c.timestamp_ms))
    block = Block("enriched", data, [g[3] for g in good], [g[4] for g in good],
                  [_date(r.published_at or now) for r in records], [c.timestamp_ms for c in coords])
    return block.where(keep), dead


def _row_by_row(good, version: str, now: datetime, dead: list[Row]) -> tuple[Block | None, list[Row]]:
    rows: list[Row] = []
    for record, pred, coords, source, position in good:
        try:
            with stage("rows"):
                row = enriched_row(record, pred, version, coords, now)
        except Exception as exc:  # noqa: BLE001 - a schema violation must not stop the stream
            failed = dead_letter(record.model_dump_json().encode(), f"output validation failed: {exc}", "enrich",
                                 coords, now)
            dead.append(dead_row(failed, source, position, coords.timestamp_ms))
            continue
        rows.append(TimedRow("enriched", row, source, position, _date(record.published_at or now), coords.timestamp_ms))
    return (Block.of_rows("enriched", rows) if rows else None), dead


def with_stories(block: Block, index: StoryIndex) -> Block:
    """The block with story_id / copies_seen / novelty set, in row order (enrich/stories.py)."""
    data = block.data
    with stage("stories"):
        ids, texts, published = (data.column(c).to_pylist() for c in ("id", "text", "published_at"))
        found = index.assign_many(ids, texts, published)
        for name, values, typ in (("story_id", [a.story_id for a in found], pa.string()),
                                  ("copies_seen", [a.copies_seen for a in found], pa.int64()),
                                  ("novelty", [a.novelty for a in found], pa.float64())):
            data = data.set_column(data.schema.get_field_index(name), data.schema.field(name), pa.array(values, typ))
    return replace(block, data=data)


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
    """The end of the chain: a bundle's inference results -> rows -> stories -> one commit.

    Buffers the bundle's keyed results and, at the end of the bundle, builds its enriched rows as
    one Arrow table (`bundle_blocks`, enrich/rows.py), sets their stories in arrival order and
    commits: one Delta commit per table for all the bundle's sources, each carrying its source's
    end position (see lake/commit.py). One step instead of three per-element ones (rows, stories,
    write), because every element handed between Beam steps costs Python per post (issue #18).

    Stories: the index is the lake. On start-up it is rebuilt from the committed rows of the last
    `window` (story ids travel with each row), so a restart resumes with the state of its last
    commit and replays the uncommitted rest to the same ids; a replayed id gets its first answer.
    One index per worker process, shared by its bundles under a lock. Several worker processes
    each see only their own rows: see docs/ALERTS.md ("Stories") for what that means.

    Logs one progress line every `report_every` seconds (rows, dead letters, rate) at INFO and
    each commit at DEBUG, so an operator sees a live stream without drowning in lines.
    """

    _indexes: dict[tuple[str, StoryConfig, str | None], StoryIndex] = {}
    _lock = threading.Lock()

    def __init__(self, lake: str, on_commit=None, report_every: float = 30.0, stories: StoryConfig | None = None,
                 story_scope: str | None = None, flush_rows: int | None = None, assignment: str | None = None) -> None:
        self._lake_root = lake
        self._assignment_path = assignment  # --join-group: commit only partitions this process holds
        # commit every flush_rows results instead of only at the bundle's end: a backfill's bundle may
        # hold every chunk of the run (FnApiRunner hands a Create's elements over in one bundle), and
        # a source's rows arrive in order, so a commit mid-bundle is one more in-order commit
        self._flush_rows = flush_rows
        self._on_commit = on_commit
        self._report_every = report_every
        self._stories = stories or load_settings().stories
        self._scope = story_scope  # "kafka" or "file": restore only this writer's rows (see committed_story_rows)

    def setup(self) -> None:
        self._lake = Lake(self._lake_root)
        self._assignment = Assignment(self._assignment_path) if self._assignment_path else None
        self._since = time.monotonic()
        self._counts = {"enriched": 0, "deadletter": 0}
        key = (self._lake_root, self._stories, self._scope)
        with WriteToLake._lock:
            index = WriteToLake._indexes.get(key)
            if index is None:
                index = WriteToLake._indexes[key] = StoryIndex(self._stories)
                loaded = index.restore(committed_story_rows(self._lake_root, self._stories.window, self._scope))
                log.info("story index: %d committed rows of the last %s restored from %s", loaded,
                         self._stories.window, self._lake_root)
        self._index = index

    def start_bundle(self) -> None:
        self._items: list[tuple[Any, Any]] = []

    def process(self, keyed: tuple[Any, Any]):
        self._items.append(keyed)
        if self._flush_rows is not None and len(self._items) >= self._flush_rows:
            self._flush()

    def finish_bundle(self):
        self._flush()
        self._report()

    def _flush(self) -> None:
        if self._items:
            block, dead = bundle_blocks(self._items, datetime.now(timezone.utc))
            if block is not None:
                with WriteToLake._lock:
                    block = with_stories(block, self._index)
            self._commit(([block] if block is not None else []) + dead, len(self._items))
        self._items = []

    def _commit(self, rows: list[Block | Row], records: int) -> None:
        blocks = as_blocks(rows)
        ends: dict[str, int] = defaultdict(int)
        for b in blocks.values():
            for source, position in zip(b.sources, b.positions, strict=True):
                ends[source] = max(ends[source], position + 1)
        began = time.perf_counter()
        kept: list[Block] = []  # a replayed range drops its head: count only the rows the commit kept
        # --join-group: each partition's owner token as published (none: the partition was revoked),
        # checked against the log by the commit, so a process that lost a partition never commits it
        tokens = self._assignment.tokens() if self._assignment is not None else None
        fences = {s: tokens.get(s, -1) for s in ends} if tokens is not None else None
        written = commit_patiently(self._lake, ends, list(blocks.values()), kept=kept,  # waits out a full lake
                                   fences=fences)
        for source in self._lake.fenced:
            ends.pop(source, None)
        elapsed = time.perf_counter() - began
        log.debug("committed %d rows of %s", written, dict(ends))
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        errors: dict[str, list[str]] = defaultdict(list)
        event_ms: dict[str, list[int]] = defaultdict(list)
        for b in kept:
            self._counts[b.table] += len(b)
            _BEAM_ROWS[b.table].inc(len(b))
            texts = b.data.column("error").to_pylist() if b.table == "deadletter" else [None] * len(b)
            for source, ms, error in zip(b.sources, b.event_ms, texts, strict=True):
                counts[source][b.table] += 1
                if ms is not None:
                    event_ms[source].append(ms)
                if b.table == "deadletter":  # by reason too, the label set of the Prometheus counter
                    errors[source].append(error or "")
                    Metrics.counter("finpulse", "dead_letters_" + metrics.dead_letter_reason(error or "")).inc()
        for source, end in ends.items():  # one commit for all sources: each observes its latency
            offset = end & OFFSET_MASK if source.startswith("kafka.") else None  # log epoch stripped
            metrics.observe_commit(source, offset, elapsed, counts[source], errors[source], event_ms[source])
            if self._on_commit is not None:
                self._on_commit(source, end)
        log.debug("bundle committed %d records from %d sources", records, len(ends))
        metrics.observe_bundle(records)

    def _report(self) -> None:
        elapsed = time.monotonic() - self._since
        if elapsed < self._report_every:
            return
        n, dead = self._counts["enriched"], self._counts["deadletter"]
        log.info("lake %s: +%d enriched, +%d dead letters in the last %.0fs (%.1f rows/s)",
                 self._lake_root, n, dead, elapsed, (n + dead) / elapsed)
        self._since, self._counts = time.monotonic(), {"enriched": 0, "deadletter": 0}


def enrich_and_write(messages, lake: str, handler: FinpulseModelHandler, max_message_bytes: int,
                     fallback_kind: str = "news", on_commit=None, stories: StoryConfig | None = None,
                     story_scope: str | None = None, flush_rows: int | None = None, assignment: str | None = None):
    """RawMessages -> parsed -> enriched -> rows, stories, lake; one linear fused chain.
    Every message ends as one row."""
    return (
        messages
        | "Parse" >> beam.ParDo(Parse(max_message_bytes, fallback_kind))
        | "Enrich" >> RunInference(KeyedModelHandler(handler))
        | "WriteLake" >> beam.ParDo(WriteToLake(lake, on_commit, stories=stories, story_scope=story_scope,
                                                flush_rows=flush_rows, assignment=assignment))
    )
