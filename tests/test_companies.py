"""Company linking: tolerant matching, no accidental links, and measured precision/recall."""

import json
from pathlib import Path

import pytest

from finpulse.pipeline.enrich.companies import link_entities, load_gazetteer, normalize, parse_gazetteer

FIXTURE = Path(__file__).parent / "fixtures" / "linking.jsonl"


@pytest.mark.parametrize("name, ticker", [
    ("Apple Inc.", "AAPL"), ("Apple's", "AAPL"), ("APPLE", "AAPL"), ("AAPL", "AAPL"), ("$AAPL", "AAPL"),
    ("JPMorgan Chase & Co.", "JPM"), ("AT&T", "T"), ("The Home Depot", "HD"), ("Alphabet’s", "GOOGL"),
    ("Berkshire Hathaway Inc. Class B", "BRK.B"), ("GM", "GM"),
    ("apple", None), ("target", None), ("gm", None), ("Samsung", None), ("Cat", None),
])
def test_gazetteer_links_tolerantly_but_not_common_words(name, ticker):
    assert load_gazetteer().link(name) == ticker


def test_gazetteer_covers_the_100_largest_us_listed_companies():
    assert len(load_gazetteer().tickers) >= 100


def test_normalize_strips_suffixes_possessives_and_punctuation():
    assert normalize("The Coca-Cola Co.") == "coca cola"
    assert normalize("Procter & Gamble Co") == "procter & gamble"


def test_bad_gazetteer_rows_name_the_line():
    with pytest.raises(ValueError, match="custom.csv:3"):
        parse_gazetteer(["ticker,name,aliases", "AAPL,Apple,", ",Nameless,"], "custom.csv")


def test_linking_precision_and_recall_on_the_labelled_set():
    """ORG entities from the real NER model, linked through the gazetteer, scored against labels."""
    from finpulse.models.inference import Enricher
    from finpulse.models.registry import load_registry

    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    preds = Enricher(load_registry()).predict([r["text"] for r in rows])
    gaz = load_gazetteer()
    tp = fp = fn = 0
    for row, pred in zip(rows, preds):
        got, want = set(link_entities(pred.entities, gaz)), set(row["tickers"])
        tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"linking on {len(rows)} labelled sentences: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.95 and recall >= 0.85


def test_enriched_rows_carry_linked_tickers():
    from datetime import datetime, timezone

    from finpulse.models.entities import EntitySpan
    from finpulse.models.inference import Prediction
    from finpulse.pipeline.enrich.handler import enriched_row
    from finpulse.pipeline.messages import Coordinates
    from finpulse.schemas.records import InputRecord

    text = "$TSLA up, while Apple Inc. slips"
    pred = Prediction("neutral", 0.0, {"negative": 0.3, "neutral": 0.4, "positive": 0.3}, "Markets", 0.5,
                      [EntitySpan("Apple Inc.", "ORG", 16, 26, 0.9)])
    record = InputRecord(text=text, tickers=["msft"], published_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    row = enriched_row(record, pred, "v", Coordinates())
    assert row["tickers"] == ["MSFT", "TSLA", "AAPL"]
