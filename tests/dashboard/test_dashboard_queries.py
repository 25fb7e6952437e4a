"""The dashboard's numbers, checked on a hand-made lake where every answer is known."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from support.lakefixtures import T0, post, write_alert, write_dead_letters, write_posts

from finpulse.dashboard import queries
from finpulse.dashboard.filters import Filters, bucket_for_span, preset_range, where
from finpulse.dashboard.highlight import highlight_html
from finpulse.dashboard.store import LakeStore

DAY = timedelta(days=1)


def base_rows() -> list[dict]:
    return [
        post("a1", 0, "negative", ("AAPL",)), post("a2", 1, "negative", ("AAPL",)),
        post("a3", 2, "neutral", ("AAPL",)), post("a4", 3, "positive", ("AAPL",), text="Apple up 50% today"),
        post("m1", 4, "negative", ("MSFT",), topic="Stock Commentary", source="twitter", kind="social"),
        post("m2", 5, "positive", ("MSFT",), topic="Stock Commentary", source="twitter", kind="social", text="MSFT up 500 points"),
        post("m3", 6, "positive", ("MSFT",), topic="Stock Commentary", source="twitter", kind="social", text="Ünïcødé 🚀 MSFT"),
        post("am", 10, "negative", ("AAPL", "MSFT")),
        post("none", 11, "positive"),
    ]


@pytest.fixture
def lake(tmp_path):
    write_posts(tmp_path, base_rows())
    write_alert(tmp_path, "AAPL", 0, "critical")
    return tmp_path


@pytest.fixture
def store(lake):
    s = LakeStore(lake, min_refresh_s=0)
    s.refresh()
    return s


def everything(**kw) -> Filters:
    return Filters(start=T0 - DAY, end=T0 + DAY, **kw)


def test_overview_counts_posts_and_negative_share(store):
    o = queries.overview(store, everything())
    assert o["posts"] == 9
    assert o["negative_share"] == pytest.approx(4 / 9)
    assert o["prev_posts"] == 0 and o["prev_negative_share"] is None


def test_company_filter_counts_every_post_that_mentions_it(store):
    assert queries.overview(store, everything(tickers=("AAPL",)))["posts"] == 5
    assert queries.overview(store, everything(tickers=("AAPL", "MSFT")))["posts"] == 8
    top = queries.top_companies(store, everything()).set_index("ticker")
    assert top.loc["AAPL", "posts"] == 5 and top.loc["AAPL", "negative_share"] == pytest.approx(3 / 5)
    assert top.loc["MSFT", "posts"] == 4


def test_other_filters_combine(store):
    assert queries.count_posts(store, everything(kinds=("social",))) == 3
    assert queries.count_posts(store, everything(sources=("twitter",), sentiments=("positive",))) == 2
    assert queries.count_posts(store, everything(topics=("Stock Commentary",), tickers=("AAPL",))) == 0
    # The range is [start, end): the post at minute 10 is out, the one at minute 0 is in.
    assert queries.count_posts(store, Filters(start=T0, end=T0 + timedelta(minutes=10))) == 7


@pytest.mark.parametrize("text, expected", [
    ("50%", {"a4"}),                 # literal match: % is not a wildcard
    ("up 50", {"a4", "m2"}),
    ("ÜNÏCØDÉ 🚀", {"m3"}),           # case-insensitive beyond ASCII
    ("Ünïcødé 🚀", {"m3"}),
    ("'; DROP TABLE posts; --", set()),
    ("\" OR 1=1 --", set()),
    ("%' OR '1'='1", set()),
    ("_", set()),
])
def test_text_filter_is_a_literal_parameter(store, text, expected):
    got = set(queries.posts(store, everything(text=text))["id"])
    assert got == expected
    assert queries.count_posts(store, everything()) == 9  # nothing was dropped or changed


def test_where_never_puts_values_in_sql():
    sql, params = where(everything(tickers=("X'Y",), topics=("a;b",), text="') --"))
    assert "X'Y" not in sql and "a;b" not in sql and "--" not in sql
    assert ["X'Y"] in params and ["a;b"] in params and "') --" in params


def test_trend_buckets_follow_the_range(store):
    f = Filters(start=T0, end=T0 + timedelta(hours=1))
    assert f.bucket == "1 minute"
    volume = queries.trend(store, f)
    assert volume["volume"].sum() == 9
    assert set(volume[volume["bucket"] == volume["bucket"].min()]["sentiment"]) == {"negative"}
    means = queries.mean_by_bucket(store, everything(tickers=("AAPL", "MSFT")))
    assert set(means["series"]) == {"AAPL", "MSFT"}


def test_trend_counts_a_story_once_however_many_copies(tmp_path):
    rows = base_rows()
    copies = [post(f"rt{i}", 0.5, "negative", ("AAPL",), text="RT copy") | {"story_id": "a1", "copies_seen": i + 2}
              for i in range(5)]
    write_posts(tmp_path, rows + copies)
    store = LakeStore(tmp_path, min_refresh_s=0)
    store.refresh()
    volume = queries.trend(store, Filters(start=T0, end=T0 + timedelta(hours=1)))
    first = volume[volume["bucket"] == volume["bucket"].min()]
    assert first["volume"].sum() == 1 and first["posts"].sum() == 6  # a1 and its 5 copies: one story, six posts
    assert volume["volume"].sum() == 9 and volume["posts"].sum() == 14


def test_bucket_for_span_keeps_charts_readable():
    assert bucket_for_span(timedelta(hours=1)) == "1 minute"
    assert bucket_for_span(timedelta(hours=6)) == "5 minutes"
    assert bucket_for_span(timedelta(days=1)) == "15 minutes"
    assert bucket_for_span(timedelta(days=7)) == "1 hour"
    assert bucket_for_span(timedelta(days=30)) == "6 hours"
    assert bucket_for_span(timedelta(days=365)) == "7 days"
    assert bucket_for_span(timedelta(days=3650)) == "7 days"


def test_presets_are_relative_to_the_newest_post():
    oldest, newest = T0 - 30 * DAY, T0
    start, end = preset_range("Last 24 hours", oldest, newest)
    assert end > newest and end - start == DAY
    assert preset_range("All", oldest, newest)[0] == oldest
    assert preset_range("Last year", oldest, newest)[0] == oldest  # never before the first post


def test_alerts_overlapping_the_range_newest_first_and_filtered_by_company(store, lake):
    write_alert(lake, "MSFT", 120, "medium", name="alerts-1")
    store.refresh()
    got = queries.alerts(store, everything())
    assert list(got["key"]) == ["MSFT", "AAPL"]
    assert list(queries.alerts(store, everything(tickers=("AAPL",)))["key"]) == ["AAPL"]
    assert queries.alerts(store, Filters(start=T0 + timedelta(hours=5), end=T0 + DAY)).empty
    behind = queries.alert_posts(store, "ticker", "AAPL", T0, T0 + timedelta(hours=1))
    assert list(behind["id"][:3]) == ["a1", "a2", "am"]  # most negative first, then by time
    assert len(behind) == 5


def test_movers_compare_the_last_quarter_with_the_rest(tmp_path):
    rows = [post(f"b{i}", i, "positive", ("NVDA",)) for i in range(6)] + [post(f"r{i}", 50 + i, "negative", ("NVDA",)) for i in range(3)]
    rows += [post(f"k{i}", i, "neutral", ("KO",)) for i in range(6)] + [post(f"kr{i}", 50 + i, "neutral", ("KO",)) for i in range(3)]
    write_posts(tmp_path, rows)
    store = LakeStore(tmp_path, min_refresh_s=0)
    store.refresh()
    got = queries.movers(store, Filters(start=T0, end=T0 + timedelta(minutes=60)), min_posts=3).set_index("ticker")
    assert list(got.index) == ["NVDA", "KO"]
    assert got.loc["NVDA", "change"] == pytest.approx(-1.4)
    assert got.loc["KO", "change"] == 0
    assert queries.movers(store, Filters(start=T0, end=T0 + timedelta(minutes=60)), min_posts=4).empty


def test_topics_split_by_sentiment(store):
    got = queries.topics(store, everything()).set_index("topic")
    assert got.loc["Stock Commentary", ["posts", "negative", "neutral", "positive"]].tolist() == [3, 1, 0, 2]
    assert got.loc["Company | Product News", "posts"] == 6


def test_refresh_loads_only_new_files_and_counts_duplicate_ids_once(store, lake):
    version = store.version
    assert store.refresh() is False and store.version == version
    write_posts(lake, [post("a1", 0, "positive", ("AAPL",)), post("new", 20, "negative", ("KO",))], name="part-1")
    assert store.refresh() is True and store.version == version + 1
    assert queries.count_posts(store, everything()) == 10
    # the first-ingested copy of a1 stays: still negative
    assert queries.posts(store, everything(text="post a1"))["sentiment"].tolist() == ["negative"]


def test_unreadable_files_are_skipped_and_reported(store, lake):
    """A committed file broken on disk afterwards (bad disk, stray copy over it) is skipped."""
    bad = write_posts(lake, [post("gone", 40, "neutral")], name="part-3")
    bad.write_bytes(b"PAR1 this is not parquet")
    write_posts(lake, [post("later", 30, "neutral")], name="part-2")
    store.refresh()
    status = store.status()
    assert str(bad) in status.skipped
    assert status.posts == 10


def test_status_of_empty_missing_and_dead_letter_only_lakes(tmp_path):
    assert LakeStore(tmp_path / "missing").status().exists is False
    empty = LakeStore(tmp_path)
    empty.refresh()
    assert (empty.status().exists, empty.status().posts) == (True, 0)
    write_dead_letters(tmp_path, 7)
    empty.refresh(force=True)
    assert (empty.status().posts, empty.status().dead_letters) == (0, 7)


def test_export_is_the_whole_selection_as_csv(store):
    rows = list(csv.DictReader(io.StringIO(queries.export_csv(store, everything(tickers=("MSFT",))).decode())))
    assert [r["id"] for r in rows] == ["m1", "m2", "m3", "am"]
    assert rows[2]["text"] == "Ünïcødé 🚀 MSFT"
    assert json.loads(rows[0]["entities"]) == []


def test_highlight_escapes_everything_and_marks_entities():
    text = "<script>alert(1)</script> Apple \u202eevil & Co"
    html = highlight_html(text, [{"start": 26, "end": 31, "type": "ORG", "score": 0.9}])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<mark' in html and ">Apple<sub>ORG</sub></mark>" in html
    assert "\u202e" not in html and "\\u202E" in html
    assert "&amp; Co" in html


def test_highlight_cuts_long_texts_and_ignores_bad_offsets():
    text = "x" * 5000 + " Tesla"
    html = highlight_html(text, [{"start": 5001, "end": 5006, "type": "ORG"}, {"start": -1, "end": 3, "type": "PER"},
                                 {"start": 2, "end": 99999, "type": "LOC"}], max_chars=100)
    assert "<mark" not in html
    assert "(4,906 more characters)" in html


def test_top_companies_show_distinct_stories_beside_posts(store):
    top = queries.top_companies(store, everything()).set_index("ticker")
    assert (top["stories"] <= top["posts"]).all() and top.loc["AAPL", "stories"] == 5  # no story ids: each post its own
