"""The sentiment_series macro: buckets, keys, counts, and duplicated ids counted once."""

from datetime import datetime, timedelta, timezone

from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.query import run_query
from finpulse.schemas.records import EnrichedRecord

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def row(i, minutes, sentiment, tickers, topic="Markets", source="reuters", kind="news", id_=None):
    score = {"negative": -0.8, "neutral": 0.0, "positive": 0.6}[sentiment]
    data = EnrichedRecord(
        id=id_ or f"p{i}", kind=kind, source=source, published_at=T0 + timedelta(minutes=minutes), ingested_at=T0,
        text="t", tickers=tickers, sentiment=sentiment, sentiment_score=score,
        sentiment_probs={"negative": 0.1, "neutral": 0.1, "positive": 0.8}, topic=topic, topic_score=0.9,
        entities=[], model_version="v").model_dump()
    return Row("enriched", data, "test", i, "2026-11-02")


def make_lake(tmp_path):
    rows = [row(0, 1, "negative", ["AAPL"]), row(1, 2, "negative", ["AAPL", "MSFT"]), row(2, 3, "positive", ["AAPL"]),
            row(3, 61, "neutral", ["MSFT"], topic="Earnings", source="twitter", kind="social")]
    Lake(tmp_path).commit("test", 0, 4, rows)
    # the same post again from another source range (a replayed backfill, say): counts once
    Lake(tmp_path).commit("test2", 0, 1, [Row("enriched", rows[0].data, "test2", 0, "2026-11-02")])
    return tmp_path


def test_hourly_series_per_ticker(tmp_path):
    lake = make_lake(tmp_path)
    got = run_query(lake, """select bucket, key, volume, negatives, positives, negative_share, round(mean_score, 3) m
                             from sentiment_series('1 hour', 'ticker') order by bucket, key""").to_pylist()
    assert [(g["key"], g["volume"], g["negatives"], g["positives"]) for g in got] == [
        ("AAPL", 3, 2, 1), ("MSFT", 1, 1, 0), ("MSFT", 1, 0, 0)]
    assert got[0]["bucket"] == T0 and abs(got[0]["negative_share"] - 2 / 3) < 1e-9 and got[0]["m"] == round((-0.8 * 2 + 0.6) / 3, 3)


def test_other_keys_and_bucket_sizes(tmp_path):
    lake = make_lake(tmp_path)
    overall = run_query(lake, "select volume from sentiment_series('1 day', 'all')").to_pylist()
    assert overall == [{"volume": 4}]  # 5 rows in the lake, one id duplicated
    kinds = run_query(lake, "select key, sum(volume) v from sentiment_series('5 minutes', 'kind') group by 1 order by 1")
    assert kinds.to_pylist() == [{"key": "news", "v": 3}, {"key": "social", "v": 1}]
    minutes = run_query(lake, "select count(*) n from sentiment_series('1 minute', 'topic')").to_pylist()[0]["n"]
    assert minutes == 4
