"""The columnar row path (enrich/rows.enriched_table) against the validated one (enriched_row).

Issue #18: "same feed, same lake rows (every column) through the old row path and the columnar
one". The feed is real text (linked company headlines and news sentences from ../shared/data)
plus generated posts, through the real models with per-company sentiment; the comparison is of
the Arrow tables the lake would store, every column, nested ones included.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from finpulse.models.artifacts.registry import DEFAULT_REGISTRY, load_registry
from finpulse.models.engine.entities import EntitySpan
from finpulse.models.engine.inference import Enricher, MentionSentiment, Prediction
from finpulse.pipeline.devtools.generator import generate_posts
from finpulse.pipeline.enrich.handler import company_spans
from finpulse.pipeline.enrich.rows import enriched_row, enriched_table, violations
from finpulse.pipeline.lake.tables import SCHEMAS
from finpulse.pipeline.messages import Coordinates
from finpulse.pipeline.runtime.settings import InferenceSettings
from finpulse.schemas.records import InputRecord

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


def feed(real_data) -> list[InputRecord]:
    """Real headlines and sentences naming companies, then generated posts with cashtags and tickers."""
    real = [r["text"] for r in real_data.rows("headlines_real.jsonl")[:120]] + \
           [r["text"] for r in real_data.rows("linking_real.jsonl")[:120]]
    records = [InputRecord(id=f"real-{i}", text=t, source="realtext", kind=None if i % 2 else "social")
               for i, t in enumerate(real)]  # no kind: the row says news
    records += [InputRecord.model_validate(p) for p in generate_posts(160, seed=11)]
    return records


def coordinates(n: int) -> list[Coordinates]:
    return [Coordinates(topic="news", partition=i % 3, offset=i, timestamp_ms=1_764_000_000_000 + i) for i in range(n)]


def reference(records, preds, coords) -> pa.Table:
    """The old path: one pydantic-validated row at a time, then Arrow from the dicts."""
    rows = [enriched_row(r, p, "v1", c, NOW) for r, p, c in zip(records, preds, coords, strict=True)]
    return pa.Table.from_pylist(rows, schema=SCHEMAS["enriched"])


@pytest.fixture(scope="module")
def predicted(real_data):
    records = feed(real_data)
    engine = Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings(), mention_finder=company_spans)
    return records, engine.predict([r.text for r in records])


def test_same_feed_same_rows_every_column(predicted):
    records, preds = predicted
    coords = coordinates(len(records))
    table, bad = enriched_table(records, preds, "v1", coords, NOW)
    expected = reference(records, preds, coords)
    assert bad == {}
    assert table.schema == expected.schema
    for name in expected.column_names:
        assert table.column(name).to_pylist() == expected.column(name).to_pylist(), name
    assert table.equals(expected)
    # the feed exercises what the comparison is about: nested columns with content, nulls, real text
    assert sum(len(e) for e in table.column("entities").to_pylist()) > 200
    assert sum(len(c) for c in table.column("entity_sentiment").to_pylist()) > 100
    assert sum(1 for t in table.column("title").to_pylist() if t is None) > 100
    assert set(table.column("kind").to_pylist()) == {"news", "social"}


def test_empty_bundle_and_no_entity_sentiment_head():
    table, bad = enriched_table([], [], "v1", [], NOW)
    assert table.num_rows == 0 and bad == {} and table.schema == SCHEMAS["enriched"]
    record = InputRecord(id="a", text="Apple shares rise")
    pred = Prediction("positive", 0.8, {"negative": 0.05, "neutral": 0.1, "positive": 0.85}, "Markets", 0.9)
    table, bad = enriched_table([record], [pred], "v1", coordinates(1), NOW)
    assert bad == {} and table.column("entity_sentiment").to_pylist() == [None]  # no head: null, not []
    assert table.equals(reference([record], [pred], coordinates(1)))


def _good(text: str = "Apple and Boeing shares move") -> tuple[InputRecord, Prediction]:
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.8}
    mention = MentionSentiment("Apple", 0, 5, "positive", 0.7, probs, "ner")
    pred = Prediction("positive", 0.7, {"negative": 0.1, "neutral": 0.1, "positive": 0.8}, "Markets", 0.9,
                      [EntitySpan("Apple", "ORG", 0, 5, 0.99)], [mention])
    return InputRecord(id=f"id-{hash(text)}", text=text), pred


@pytest.mark.parametrize("breaks, reason", [
    (lambda p: replace(p, sentiment="angry"), "sentiment must be one of negative, neutral, positive"),
    (lambda p: replace(p, sentiment_score=1.5), "sentiment_score must be <= 1.0"),
    (lambda p: replace(p, sentiment_score=math.nan), "sentiment_score must be >= -1.0"),
    (lambda p: replace(p, entities=[replace(p.entities[0], start=None)]), "entities[].start is missing"),
])
def test_a_row_breaking_the_schema_is_reported_and_the_rest_kept(breaks, reason):
    """Each of these is a row pydantic refuses; the batch check must refuse the same row, and only it."""
    records, preds = zip(*[_good(f"Apple and Boeing shares move {i}") for i in range(4)], strict=True)
    preds = list(preds)
    preds[2] = breaks(preds[2])
    with pytest.raises(ValueError):
        enriched_row(records[2], preds[2], "v1", Coordinates(), NOW)  # the specification refuses it
    _, bad = enriched_table(list(records), preds, "v1", coordinates(4), NOW)
    assert list(bad) == [2]
    assert bad[2].startswith(reason.split(" must")[0]), bad


def test_violations_follow_the_pydantic_model():
    """Nulls where the model wants a value, at any depth, are found without naming the columns here."""
    records, preds = zip(*[_good(f"Apple shares {i}") for i in range(3)], strict=True)
    table, bad = enriched_table(list(records), list(preds), "v1", coordinates(3), NOW)
    assert bad == {}
    topic = table.column("topic").to_pylist()
    topic[1] = None
    ents = table.column("entities").to_pylist()
    ents[0][0]["type"] = None
    broken = table.set_column(table.schema.get_field_index("topic"), "topic", pa.array(topic, pa.string()))
    broken = broken.set_column(broken.schema.get_field_index("entities"), "entities",
                               pa.array(ents, SCHEMAS["enriched"].field("entities").type))
    assert violations(broken) == {0: "entities[].type is missing", 1: "topic is missing"}


@pytest.mark.slow
def test_backfill_writes_the_rows_of_the_row_path(tmp_path, real_data):
    """The whole chain (parse, engine, columnar rows, stories in bundle order, Delta commit) stores
    what the old per-row path gives for the same feed: every column but ingested_at (the commit's
    clock), read back from the lake. fp32 and one engine call for the feed, as the backfill makes
    one (under 512 posts): the same numbers in, so any difference is the row path's."""
    import json

    from finpulse.pipeline.enrich.parse import parse_message
    from finpulse.pipeline.enrich.stories import StoryIndex
    from finpulse.pipeline.jobs.backfill import run_backfill
    from finpulse.pipeline.lake.query import run_query

    real = [r["text"] for r in real_data.rows("headlines_real.jsonl")[:150]]
    posts = [{"id": f"h{i}", "text": t, "source": "wire", "published_at": f"2026-11-0{1 + i % 2}T10:{i % 60:02d}:00Z"}
             for i, t in enumerate(real)]
    posts += [{**p, "id": f"h{i}-copy", "text": "RT @desk: " + p["text"]} for i, p in enumerate(posts[:40])]
    posts += list(generate_posts(150, seed=5))
    archive = tmp_path / "feed.jsonl"
    archive.write_text("".join(json.dumps(p) + "\n" for p in posts))
    run_backfill(str(archive), str(tmp_path / "lake"), device="cpu", precision="fp32", progress=False)

    records = [parse_message(json.dumps(p).encode(), Coordinates(source_ref=str(archive), source_row=i))
               for i, p in enumerate(posts)]
    engine = Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings(precision="fp32"),
                      mention_finder=company_spans)
    preds = engine.predict([r.text for r in records])
    index = StoryIndex()
    expected = []
    for r, p in zip(records, preds, strict=True):
        row = enriched_row(r, p, engine.model_version, Coordinates(), NOW)
        story = index.assign(row["id"], row["text"], row["published_at"])
        row.update(story_id=story.story_id, copies_seen=story.copies_seen, novelty=story.novelty)
        expected.append(row)
    want = pa.Table.from_pylist(expected, schema=SCHEMAS["enriched"]).drop_columns(["ingested_at"])
    got = run_query(tmp_path / "lake", "select * exclude (ingested_at) from enriched")
    got = got.select(want.column_names).sort_by("id").cast(want.schema)
    want = want.sort_by("id")
    for name in want.column_names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    assert sum(1 for c in got.column("copies_seen").to_pylist() if c > 1) >= 40  # the retweets found their stories
