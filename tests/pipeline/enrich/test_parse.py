"""Every raw message becomes exactly one InputRecord or one DeadLetter that says why."""

import json
from datetime import datetime, timezone

import pytest

from finpulse.pipeline.enrich.parse import parse_message
from finpulse.pipeline.messages import Coordinates
from finpulse.schemas.records import DeadLetter, InputRecord, derive_id

COORDS = Coordinates(topic="social-posts", partition=2, offset=41, timestamp_ms=1_700_000_000_000)


def good(**fields) -> bytes:
    return json.dumps({"text": "$AAPL beats estimates", **fields}).encode()


def test_valid_record_gets_defaults_from_topic_and_kafka():
    rec = parse_message(good(), COORDS)
    assert isinstance(rec, InputRecord)
    assert rec.kind == "social"  # from the topic name
    assert rec.published_at == datetime.fromtimestamp(1_700_000_000, timezone.utc)  # Kafka timestamp
    assert rec.id == derive_id("unknown", None, "$AAPL beats estimates")


def test_naive_timestamp_means_utc_and_offsets_are_normalised():
    assert parse_message(good(published_at="2024-03-01T10:00:00")).published_at == datetime(2024, 3, 1, 10, tzinfo=timezone.utc)
    assert parse_message(good(published_at="2024-03-01T12:00:00+02:00")).published_at == datetime(2024, 3, 1, 10, tzinfo=timezone.utc)


def test_derived_id_is_deterministic_and_explicit_id_wins():
    a, b = parse_message(good(url="u", source="s")), parse_message(good(url="u", source="s"))
    assert a.id == b.id and a.id.startswith("h-")
    assert parse_message(good(id="abc")).id == "abc"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (json.dumps({"title": "no text"}).encode(), "text"),
        (json.dumps({"text": "   "}).encode(), "text is empty"),
        (json.dumps({"text": 42}).encode(), "expected a string"),
        (json.dumps({"text": "x", "tickers": "AAPL"}).encode(), "tickers must be a list"),
        (json.dumps({"text": "x", "published_at": "last tuesday"}).encode(), "published_at"),
        (b'{"text": "nul \x00 inside"}', "not valid JSON"),
        (b"\xff\xfe\xfa", "not UTF-8"),
        (b"", "empty message"),
    ],
)
def test_bad_messages_become_dead_letters_with_reason_and_coordinates(raw, reason):
    dl = parse_message(raw, COORDS)
    assert isinstance(dl, DeadLetter)
    assert reason in dl.error
    assert (dl.kafka_topic, dl.kafka_partition, dl.kafka_offset) == ("social-posts", 2, 41)
    assert dl.raw == raw and dl.raw_size == len(raw)


def test_oversized_message_keeps_a_prefix_and_its_true_size():
    raw = good(text="x" * (2 * 1024 * 1024))
    dl = parse_message(raw, COORDS, max_bytes=1024 * 1024)
    assert isinstance(dl, DeadLetter)
    assert "over the 1,048,576-byte limit" in dl.error
    assert dl.raw_size == len(raw) and len(dl.raw) == 64 * 1024 and raw.startswith(dl.raw)
