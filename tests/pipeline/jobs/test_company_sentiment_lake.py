"""Per-company sentiment in the lake: rows carry `entity_sentiment`, the series, alerts and dashboard
read it (relevance-weighted, post sentiment as fallback), and a lake written before it still loads."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.lakefixtures import T0, post, write_posts

from finpulse.dashboard import queries
from finpulse.dashboard.app import company_labels
from finpulse.dashboard.filters import Filters
from finpulse.dashboard.store import LakeStore
from finpulse.models.engine.inference import MentionSentiment
from finpulse.pipeline.enrich.companies import parse_gazetteer
from finpulse.pipeline.enrich.per_company import company_sentiment
from finpulse.pipeline.lake.query import connect
from finpulse.schemas.arrow import ENRICHED_SCHEMA

DAY = timedelta(days=1)


def company(ticker: str, sentiment: str, score: float, relevance: float = 1.0, text: str | None = None) -> dict:
    probs = {"negative": 0.05, "neutral": 0.05, "positive": 0.05} | {sentiment: 0.9}
    return {"ticker": ticker, "text": text or ticker, "start": 0, "end": len(text or ticker), "sentiment": sentiment,
            "score": score, "probs": probs, "relevance": relevance}


def with_companies(row: dict, *companies: dict) -> dict:
    return row | {"entity_sentiment": list(companies)}


def write_old_posts(lake, rows: list[dict]) -> Path:
    """A commit as written before per-company sentiment: a Delta table version whose schema lacks the
    column (the lake is Delta since #16; files outside the log are not read). Returns the data file."""
    from finpulse.pipeline.lake import tables

    old = pa.schema([f for f in ENRICHED_SCHEMA if f.name != "entity_sentiment"])
    old_rows = [{k: v for k, v in r.items() if k in old.names} for r in rows]
    before = set(tables.snapshot(lake, "enriched").files)
    table = pa.Table.from_pylist(old_rows, schema=old)
    tables.append(lake, "enriched", table.append_column("date", pa.array(["2026-03-01"] * len(rows))))
    (added,) = set(tables.snapshot(lake, "enriched").files) - before
    return Path(added)


@pytest.fixture
def lake(tmp_path):
    # "Apple beats, Microsoft slumps": the post is positive, MSFT negative, AAPL positive; TSLA is only
    # in the input record's tickers (no mention), so it takes the post's sentiment.
    rows = [
        with_companies(post("mixed", 0, "positive", ("AAPL", "MSFT", "TSLA")),
                       company("AAPL", "positive", 0.85, 1.0), company("MSFT", "negative", -0.85, 0.5)),
        with_companies(post("msft2", 1, "neutral", ("MSFT",)), company("MSFT", "negative", -0.85, 1.0)),
        with_companies(post("plain", 2, "negative", ())),
    ]
    write_old_posts(tmp_path, [post("old", -30, "positive", ("MSFT",))])  # history first, as in a real lake
    write_posts(tmp_path, rows)
    return tmp_path


def test_old_files_load_with_null_entity_sentiment_and_are_not_rewritten(lake):
    from finpulse.pipeline.lake import tables

    (old,) = [Path(f) for f in tables.snapshot(lake, "enriched").files
          if "old" in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    before = old.stat().st_mtime_ns
    con = connect(lake)
    got = dict(con.execute("select id, entity_sentiment is null from enriched").fetchall())
    assert got == {"old": True, "mixed": False, "msft2": False, "plain": False}
    assert old.stat().st_mtime_ns == before


def test_a_lake_with_only_old_files_still_answers_the_series(tmp_path):
    write_old_posts(tmp_path, [post("old1", 0, "negative", ("MSFT",)), post("old2", 1, "positive", ("MSFT",))])
    con = connect(tmp_path)
    rows = con.execute("select key, volume, negatives from sentiment_series('1 day', 'ticker')").fetchall()
    assert rows == [("MSFT", 2, 1)]  # the post sentiment, as before the change


def test_ticker_series_use_each_company_own_sentiment_and_fall_back_to_the_post(lake):
    con = connect(lake)
    got = {k: (v, n, round(s, 4)) for k, v, n, s in con.execute(
        "select key, volume, negatives, mean_score from sentiment_series('1 day', 'ticker')").fetchall()}
    # MSFT: mixed (company negative, relevance 0.5), msft2 (negative, 1.0),
    # old (no column: the post's positive +0.6, weight 1)
    assert got["MSFT"][:2] == (3, 2)
    assert got["MSFT"][2] == pytest.approx((-0.85 * 0.5 - 0.85 * 1.0 + 0.6 * 1.0) / 2.5, abs=1e-4)
    assert got["AAPL"] == (1, 0, 0.85)
    assert got["TSLA"] == (1, 0, 0.6)  # no mention in the text: the post's positive
    topic = dict(con.execute("select key, negatives from sentiment_series('1 day', 'all')").fetchall())
    assert topic == {"all": 1}  # post-level series keep the post's sentiment


def test_alert_evidence_for_a_company_follows_its_own_sentiment(lake):
    from finpulse.pipeline.alerts.evaluate import _evidence

    con = connect(lake)
    for kind in ("ticker", "company"):
        ids = _evidence(con, kind, "MSFT", T0 - DAY, T0 + DAY)["example_ids"]
        assert sorted(ids) == ["mixed", "msft2"]  # "mixed" is a positive post, negative about MSFT
        assert _evidence(con, kind, "AAPL", T0 - DAY, T0 + DAY)["example_ids"] == []
    got = dict(con.execute("select key, negatives from sentiment_series('1 day', 'company')").fetchall())
    assert got["MSFT"] == 2 and got["AAPL"] == 0  # company keys (tickers for rows without them)


def test_dashboard_reads_entity_sentiment(lake):
    store = LakeStore(lake, min_refresh_s=0)
    store.refresh()
    f = Filters(start=T0 - DAY, end=T0 + DAY)
    top = queries.top_companies(store, f).set_index("ticker")
    assert top.loc["MSFT", "posts"] == 3
    assert top.loc["MSFT", "negative_share"] == pytest.approx(2 / 3)
    assert top.loc["AAPL", "negative_share"] == 0
    assert top.loc["MSFT", "mean_score"] == pytest.approx((-0.85 * 1.5 + 0.6) / 2.5)  # relevance-weighted
    series = queries.mean_by_bucket(store, Filters(start=T0, end=T0 + DAY, tickers=("AAPL",)))
    assert series["mean_score"].tolist() == [0.85]  # the company's own score, not the post's +0.6
    page = queries.posts(store, f).set_index("id")
    assert company_labels(page.loc["mixed", "entity_sentiment"]) == "AAPL positive (+0.85), MSFT negative (-0.85)"
    assert company_labels(page.loc["old", "entity_sentiment"]) == ""


GAZ = parse_gazetteer(["key,cik,name,tickers,aliases,sp500", "AAPL,320193,Apple Inc.,AAPL,apple,1",
                       "MSFT,789019,Microsoft Corp,MSFT,microsoft,1"])


def mention(text: str, start: int, word: str, sentiment: str, origin: str = "ner") -> MentionSentiment:
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1} | {sentiment: 0.8}
    score = probs["positive"] - probs["negative"]
    return MentionSentiment(word, start, start + len(word), sentiment, score, probs, origin)


def test_mentions_become_one_element_per_company_with_relevance():
    text = "Apple beats; Apple raises guidance while $AAPL rallies, and Microsoft slips on cloud."
    ms = [mention(text, 0, "Apple", "positive"), mention(text, 13, "Apple", "positive"),
          mention(text, 41, "$AAPL", "positive", "given"), mention(text, 42, "AAPL", "neutral"),  # same mention twice
          mention(text, 60, "Microsoft", "negative"), mention(text, 70, "cloud", "neutral")]  # "cloud" links to nothing
    got = company_sentiment(text, ms, GAZ)
    got_rows = [(c["ticker"], c["sentiment"], c["start"]) for c in got]
    assert got_rows == [("AAPL", "positive", 0), ("MSFT", "negative", 60)]
    assert got[0]["relevance"] == 1.0
    assert 0 < got[1]["relevance"] < 0.25  # named once, late, beside a company named three times first


def test_gazetteer_names_in_the_text_are_mention_spans_with_the_linking_case_rules():
    from finpulse.pipeline.enrich.companies import name_spans

    text = "Apple beats while Microsoft Corp. slips; apple pie is cheaper, $AAPL flat"
    assert [text[s:e] for s, e in name_spans(text, GAZ)] == ["Apple", "Microsoft Corp"]  # "apple pie" is no company
