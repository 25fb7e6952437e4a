"""Hostile input, generated: every raw message becomes exactly one InputRecord or DeadLetter."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from finpulse.pipeline.enrich.parse import parse_message
from finpulse.pipeline.messages import Coordinates
from finpulse.schemas.records import DeadLetter, InputRecord

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
records = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | st.text(), "text": json_values | st.text(min_size=1), "kind": st.sampled_from(["news", "social", "blog", 3]),
        "source": json_values, "published_at": st.sampled_from(["2026-11-02T10:00:00Z", "2026-11-02", "soon", "", 5]),
        "tickers": json_values | st.lists(st.text(max_size=6), max_size=4), "title": json_values,
    },
)


def check(raw: bytes) -> None:
    out = parse_message(raw, Coordinates(topic="news", partition=0, offset=7), max_bytes=4096)
    assert isinstance(out, (InputRecord, DeadLetter))
    if isinstance(out, DeadLetter):
        assert out.error and out.raw == raw[: 64 * 1024] and out.kafka_offset == 7
    else:
        assert out.text.strip() and out.id and out.published_at.tzinfo is not None
        assert out.kind in ("news", "social")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=5000))
def test_arbitrary_bytes(raw):
    check(raw)


@settings(max_examples=300, deadline=None)
@given(records)
def test_arbitrary_json_objects(obj):
    check(json.dumps(obj).encode())


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300))
def test_any_unicode_text_is_accepted_or_explained(text):
    check(json.dumps({"text": text}, ensure_ascii=False).encode())
