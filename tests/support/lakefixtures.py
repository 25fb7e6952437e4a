"""Hand-made lakes with known contents, for tests that check exact numbers (one Delta commit per call)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from finpulse.pipeline.lake import tables
from finpulse.schemas.records import AlertRecord, DeadLetter, EnrichedRecord

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
SCORE = {"negative": -0.8, "neutral": 0.0, "positive": 0.6}


def post(id: str, minutes: float, sentiment: str = "neutral", tickers: tuple[str, ...] = (), topic: str = "Company | Product News",
         source: str = "reuters", kind: str = "news", text: str | None = None, entities: list[dict] | None = None) -> dict:
    """One valid enriched row, `minutes` after T0."""
    text = text or f"post {id} about {' '.join(tickers) or 'markets'}"
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1} | {sentiment: 0.8}
    return EnrichedRecord(
        id=id, kind=kind, source=source, published_at=T0 + timedelta(minutes=minutes), ingested_at=T0 + timedelta(minutes=minutes, seconds=1),
        text=text, tickers=list(tickers), sentiment=sentiment, sentiment_score=SCORE[sentiment], sentiment_probs=probs,
        topic=topic, topic_score=0.9, entities=entities or [], model_version="test").model_dump()


def _commit(lake: Path, table: str, rows: list[dict], date: str = "2026-03-02") -> Path:
    """One commit of `rows` to `table`; returns the data file it added."""
    before = set(tables.snapshot(lake, table).files)
    tables.append(lake, table, tables.rows_table(table, rows, [date] * len(rows)))
    (added,) = set(tables.snapshot(lake, table).files) - before
    return Path(added)


def write_posts(lake: Path, rows: list[dict], name: str = "part-0") -> Path:
    """Commit enriched rows (`name` is kept for readability of the tests; Delta names the file)."""
    return _commit(Path(lake), "enriched", rows)


def write_dead_letters(lake: Path, n: int) -> Path:
    rows = [DeadLetter(raw=b"{not json", raw_size=9, error="invalid JSON", stage="parse", ingested_at=T0,
                       kafka_topic="news", kafka_partition=0, kafka_offset=i).model_dump() for i in range(n)]
    return _commit(Path(lake), "deadletter", rows)


def dead_letter_rows(source: str, positions) -> list:
    """Lake Rows of minimal dead letters for `source` at `positions` (for commit-protocol tests)."""
    from finpulse.pipeline.lake.commit import Row

    ingested = datetime(2026, 11, 2, tzinfo=timezone.utc)
    return [Row("deadletter", {"raw": b"x", "raw_size": 1, "error": "e", "stage": "parse", "ingested_at": ingested,
                               "kafka_offset": p}, source, p, "2026-11-02") for p in positions]


def check_crash_between_the_two_table_commits(root, monkeypatch) -> None:
    """Dead letters are committed first, then `enriched` (whose transaction is the resume point):
    killed in between, the source resumes at the old position and the re-read dead letters are
    recognised by `deadletter`'s own transaction. `root`: a lake directory or URL."""
    import pytest

    from finpulse.pipeline.lake.commit import Lake
    from finpulse.pipeline.lake.query import run_query

    def count() -> dict:
        return run_query(root, "select count(*) n, count(distinct kafka_offset) d from deadletter").to_pylist()[0]

    real = Lake._append

    def crash_before_enriched(self, table, rows, txns):
        if table == "enriched":
            raise SystemExit("killed between the deadletter and the enriched commit")
        real(self, table, rows, txns)

    monkeypatch.setattr(Lake, "_append", crash_before_enriched)
    with pytest.raises(SystemExit):
        Lake(root).commit("kafka.t.0", 0, 2, dead_letter_rows("kafka.t.0", [0, 1]))
    monkeypatch.undo()
    assert count()["n"] == 2 and Lake(root).committed("kafka.t.0") == 0
    assert Lake(root).commit("kafka.t.0", 0, 3, dead_letter_rows("kafka.t.0", [0, 1, 2])) == 1
    assert count() == {"n": 3, "d": 3} and Lake(root).committed("kafka.t.0") == 3


def write_alert(lake: Path, key: str, start_minutes: float, severity: str = "high", name: str = "alerts-0") -> Path:
    start = T0 + timedelta(minutes=start_minutes)
    alert = AlertRecord(alert_id=f"a-{key}-{start_minutes}", key_kind="ticker", key=key, bucket_width="1 hour",
                        window_start=start, window_end=start + timedelta(hours=1), volume=30, negatives=20,
                        observed_share=20 / 30, baseline_share=0.2, ratio=3.3, delta=0.47, z=5.0, p_value=1e-6,
                        severity=severity, example_ids=[], created_at=start + timedelta(hours=1))
    return _commit(Path(lake), "alerts", [alert.model_dump()])
