"""The dashboard page, driven with Streamlit's AppTest: what an analyst sees for each lake state."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.lakefixtures import post, write_dead_letters, write_posts

from finpulse.pipeline.lake.query import run_query

pytestmark = pytest.mark.slow  # drives the app on a lake backfilled through the real models

APP = str(Path(__file__).parents[2] / "dashboard" / "app.py")


def open_app(lake: Path, monkeypatch, **state) -> AppTest:
    monkeypatch.setenv("FINPULSE_LAKE", str(lake))
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def sql_count(lake: Path, where: str = "true", params: list | None = None) -> int:
    return run_query(lake, f"select count(distinct id) n from enriched where {where}", params).to_pylist()[0]["n"]


def test_overview_shows_totals_alert_and_chart(enriched_lake, monkeypatch):
    at = open_app(enriched_lake, monkeypatch)
    assert not at.exception
    assert metric(at, "Posts in range") == f"{sql_count(enriched_lake):,}"
    assert metric(at, "Alerts in range") == "1"
    latest = at.table[0].value
    # BA's own per-company labels count. With the span head alone (r2) 20 of 26 stories were negative in the
    # event bucket against a 0.35 baseline (p 3e-5), graded medium; with the post-level labels of r1 it was
    # critical; since the target model re-reads BA in the feed's multi-company posts (t1) it grades high.
    assert list(latest["key"]) == ["company: BA"] and list(latest["severity"]) == ["high"]
    assert at.get("vega_lite_chart"), "the trend chart is missing"


def test_selecting_a_company_changes_the_counts(enriched_lake, monkeypatch):
    at = open_app(enriched_lake, monkeypatch)
    at.multiselect(key="tickers").set_value(["BA"]).run()
    expected = sql_count(enriched_lake, "list_contains(tickers, 'BA')")
    assert 50 < expected < sql_count(enriched_lake)
    assert metric(at, "Posts in range") == f"{expected:,}"
    negatives = sql_count(enriched_lake, "list_contains(tickers, 'BA') and sentiment = 'negative'")
    assert metric(at, "Negative share") == f"{negatives / expected:.1%}"


@pytest.mark.parametrize("view", ["Trends", "Alerts", "Movers", "Topics", "Posts", "Models"])
def test_every_view_renders(enriched_lake, monkeypatch, view):
    at = open_app(enriched_lake, monkeypatch, view=view)
    assert not at.exception and not at.error
    assert at.subheader, "each view has a heading"
    if view in ("Trends", "Topics"):
        assert at.get("vega_lite_chart")


def test_alert_drill_down_lists_the_posts_behind_it_with_entities(enriched_lake, monkeypatch):
    at = open_app(enriched_lake, monkeypatch, view="Alerts")
    assert at.selectbox(key="alert").value is not None
    html = at.get("html")[0].proto.body
    assert html.count('class="fp-post"') >= 20
    assert "negative" in html and "<mark" in html and "BA" in html


@pytest.mark.parametrize("text", ["'; DROP TABLE posts; --", "\" OR 1=1 --", "%%%", "Ünïcødé ✓ 🚀", "\u202eevil", "<script>x</script>"])
def test_odd_filter_input_gives_an_answer_not_a_traceback(enriched_lake, monkeypatch, text):
    at = open_app(enriched_lake, monkeypatch, view="Posts", text=text)
    assert not at.exception and not at.error
    assert at.subheader[0].value == "Posts (0)"
    assert at.info[0].value == "No posts match these filters."
    assert sql_count(enriched_lake) == 1550  # the lake is read-only to the page


def test_text_filter_finds_posts(enriched_lake, monkeypatch):
    at = open_app(enriched_lake, monkeypatch, view="Posts", text="boeing")
    expected = sql_count(enriched_lake, "contains(lower(text), 'boeing') or contains(lower(coalesce(title, '')), 'boeing')")
    assert expected > 0
    assert at.subheader[0].value == f"Posts ({expected:,})"


def test_missing_lake_directory(tmp_path, monkeypatch):
    at = open_app(tmp_path / "nope", monkeypatch)
    assert not at.exception
    assert "does not exist" in at.error[0].value


def test_empty_lake(tmp_path, monkeypatch):
    at = open_app(tmp_path, monkeypatch)
    assert not at.exception
    assert "no posts yet" in at.info[0].value


def test_lake_with_only_dead_letters(tmp_path, monkeypatch):
    write_dead_letters(tmp_path, 3)
    at = open_app(tmp_path, monkeypatch)
    assert not at.exception
    assert "only dead letters (3)" in at.warning[0].value


def test_new_rows_and_corrupt_files(tmp_path, monkeypatch):
    write_posts(tmp_path, [post("p1", 0, "negative", ("KO",)), post("p2", 1, "positive", ("KO",))])
    at = open_app(tmp_path, monkeypatch)
    assert metric(at, "Posts in range") == "2"
    torn = write_posts(tmp_path, [post("torn", 3, "neutral", ("KO",))], name="torn")
    torn.write_bytes(b"PAR1\x00\x00")  # broken after its commit
    write_posts(tmp_path, [post("p3", 2, "neutral", ("KO",))], name="part-1")
    at.run()
    assert metric(at, "Posts in range") == "3"
    assert "1 unreadable file(s) skipped" in at.warning[0].value


HOSTILE = {
    "script": "<script>alert('x')</script><img src=x onerror=alert(1)> AAPL",
    "rtl": "\u202eAAPL shares \u2067evil\u2069 \u05e9\u05dc\u05d5\u05dd",
    "zero-width": "A\u200bA\u200dPL\ufeff falls",
    "emoji": "📉📉📉🚀",
    "huge": "bad news " * 1_200_000,  # ~10 MB
    "markdown": "**bold** [link](javascript:alert(1)) `code` $x$",
}


def test_hostile_texts_are_shown_escaped(tmp_path, monkeypatch):
    write_posts(tmp_path, [post(name, i, "negative", ("AAPL",), text=text) for i, (name, text) in enumerate(HOSTILE.items())])
    at = open_app(tmp_path, monkeypatch, view="Posts")
    assert not at.exception and not at.error
    html = at.get("html")[0].proto.body
    assert html.count('class="fp-post"') == len(HOSTILE)
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert "\u202e" not in html and "\\u202E" in html
    assert len(html) < 100_000, "a 10 MB post is cut for display"
    assert "more characters)" in html
