"""The Arrow schema is derived from the pydantic models and accepts what they produce."""

from datetime import datetime, timezone

import pyarrow as pa

from finpulse.schemas.arrow import DEADLETTER_SCHEMA, ENRICHED_SCHEMA
from finpulse.schemas.records import EnrichedRecord


def test_enriched_schema_follows_the_model():
    assert ENRICHED_SCHEMA.names == list(EnrichedRecord.model_fields)
    assert ENRICHED_SCHEMA.field("published_at").type == pa.timestamp("us", tz="UTC")
    assert ENRICHED_SCHEMA.field("tickers").type == pa.list_(pa.string())
    ent = ENRICHED_SCHEMA.field("entities").type.value_type
    assert [f.name for f in ent] == ["text", "type", "start", "end", "score"]
    assert ENRICHED_SCHEMA.field("kafka_offset").nullable and not ENRICHED_SCHEMA.field("id").nullable
    assert DEADLETTER_SCHEMA.field("raw").type == pa.binary()


def test_model_rows_round_trip_through_arrow():
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    row = EnrichedRecord(
        id="1", kind="news", source="reuters", published_at=now, ingested_at=now, text="Apple rose",
        tickers=["AAPL"], sentiment="positive", sentiment_score=0.5,
        sentiment_probs={"negative": 0.1, "neutral": 0.3, "positive": 0.6}, topic="Stock Movement", topic_score=0.7,
        entities=[{"text": "Apple", "type": "ORG", "start": 0, "end": 5, "score": 0.9}], model_version="v",
    ).model_dump()
    table = pa.Table.from_pylist([row], schema=ENRICHED_SCHEMA)
    back = table.to_pylist()[0]
    assert back["entities"][0]["text"] == "Apple" and back["published_at"] == now
