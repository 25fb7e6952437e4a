from datetime import datetime, timezone

import pytest

from finpulse.pipeline.devtools.generator import Event, generate_posts
from finpulse.pipeline.enrich.parse import parse_message
from finpulse.schemas.records import InputRecord


def test_generator_is_seeded_varied_and_valid():
    a, b = list(generate_posts(300, seed=4)), list(generate_posts(300, seed=4))
    assert a == b and len(a) == 300
    assert {p["kind"] for p in a} == {"news", "social"} and len({p["source"] for p in a}) >= 6
    assert len({p["text"] for p in a}) > 250
    import json

    assert all(isinstance(parse_message(json.dumps(p).encode()), InputRecord) for p in a)


def test_injected_event_adds_negative_posts_for_one_company_in_its_window():
    event = Event.parse("BA@2026-11-03T14:00:00Z,40,30")
    assert event == Event("BA", datetime(2026, 11, 3, 14, tzinfo=timezone.utc), 40, 30)
    posts = list(generate_posts(200, seed=1, events=(event,)))
    injected = [p for p in posts if p["id"].startswith("event-BA")]
    assert len(posts) == 240 and len(injected) == 40
    assert all("2026-11-03T14:00" <= p["published_at"] < "2026-11-03T14:31" for p in injected)
    assert [p["published_at"] for p in posts] == sorted(p["published_at"] for p in posts)


@pytest.mark.parametrize("spec", ["ZZZZ@2026-11-03T14:00:00Z", "BA@yesterday", "BA@2026-11-03T14:00:00Z,many"])
def test_bad_event_specs_say_how_to_write_them(spec):
    with pytest.raises(ValueError):
        Event.parse(spec)
