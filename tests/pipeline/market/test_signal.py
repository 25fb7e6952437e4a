"""`finpulse signal`: the statistics recover a planted effect (and nothing from shuffled dates), posts
and alerts land in the right trading session, and the command answers through click on a small lake."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from finpulse.pipeline.cli import main
from finpulse.pipeline.devtools.signal_choice import synthetic_universe, trading_days
from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.query import connect
from finpulse.pipeline.market import stats
from finpulse.pipeline.market.sessions import session_day, session_sql
from finpulse.pipeline.market.study import SignalSettings, run_signal, run_study
from finpulse.schemas.records import AlertRecord

UTC = timezone.utc
DRIFT = -0.03  # planted CAR over [+1, +5] after each news burst


# -- the statistics ----------------------------------------------------------------------------
def test_spearman_with_ties_matches_hand_computed_values():
    assert stats.spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1.0)
    assert stats.spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1.0)
    # ranks x: 1, 2.5, 2.5, 4; y: 1, 2, 3, 4 -> rho = 0.9486832980505138 (Pearson of the ranks)
    assert stats.spearman(np.array([1.0, 2, 2, 3]), np.array([1.0, 2, 3, 4])) == pytest.approx(0.9486832980505138)
    assert stats.spearman(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])) is None


def planted(seed: int, shuffled: bool) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Abnormal returns of 30 companies x 400 sessions (1% noise) with -3% over the 3 sessions after
    each of 150 events (or after random sessions, the events' own dates shuffled)."""
    rng = np.random.default_rng(seed)
    ar = rng.normal(0, 0.01, (30, 400))
    events = [(int(rng.integers(30)), int(rng.integers(5, 390))) for _ in range(150)]
    for c, t in events:
        t = int(rng.integers(5, 390)) if shuffled else t
        ar[c, t + 1:t + 4] += DRIFT / 3
    return ar, events


def test_event_study_recovers_the_planted_drop_and_nothing_from_shuffled_dates():
    ar, events = planted(1, shuffled=False)
    car = stats.window_sums(ar, 1, 5)
    found = stats.car_stats([car[c, t] for c, t in events])
    # sd of a 5-session CAR is 1% x sqrt(5): the mean of 150 is within 0.0018 of -3% at 1 sd
    assert found["mean"] == pytest.approx(DRIFT, abs=0.006) and found["t"] < -10 and found["n"] == 150
    assert found["share_below_-2%"] > 0.6
    reference = stats.car_stats(car[~np.isnan(car)])  # every company-day: the events are 150 of 11,760 of them
    assert -0.004 < reference["mean"] < 0.001 and found["share_below_-2%"] > 2.5 * reference["share_below_-2%"]
    ar, events = planted(1, shuffled=True)
    car = stats.window_sums(ar, 1, 5)
    none = stats.car_stats([car[c, t] for c, t in events])
    assert abs(none["mean"]) < 0.006 and abs(none["t"]) < 3


def test_information_coefficient_recovers_a_planted_rank_signal():
    rng = np.random.default_rng(3)
    signal = rng.normal(size=(40, 300))
    returns = rng.normal(size=(40, 300))
    returns[:, 1:] += 0.3 * signal[:, :-1]  # tomorrow's return follows today's signal
    lagged = stats.ic_summary(signal, returns, 1)
    assert lagged["ic"] > 0.2 and lagged["t"] > 10 and lagged["days"] == 299
    same_day = stats.ic_summary(signal, returns, 0)
    assert abs(same_day["ic"]) < 0.03 and abs(same_day["t"]) < 3
    shuffled = stats.ic_summary(signal[:, rng.permutation(300)], returns, 1)
    assert abs(shuffled["t"]) < 3


def test_windows_and_curves_leave_out_missing_sessions():
    ar = np.array([[0.01, 0.02, np.nan, 0.04, 0.05]])
    assert stats.window_sums(ar, -1, 1)[0].tolist()[1] == pytest.approx(np.nan, nan_ok=True)
    assert stats.window_sums(ar, 0, 1)[0, 0] == pytest.approx(0.03)
    curve = stats.car_curve(np.array([[0.01, -0.02, 0.03, 0.0], [0.01, -0.04, 0.01, np.nan]]), [(0, 1), (1, 1)], -1, 2)
    assert [(p["day"], p["n"]) for p in curve] == [(-1, 2), (0, 2), (1, 2), (2, 1)]
    assert curve[1]["mean"] == pytest.approx((-0.01 + -0.03) / 2)
    assert curve[1]["lower"] < curve[1]["mean"] < curve[1]["upper"]


# -- trading sessions ----------------------------------------------------------------------------
CALENDAR = trading_days(date(2025, 3, 3), 87)  # March to early July 2025: DST starts 9 March, July 4th


@pytest.mark.parametrize(("at", "expected"), [
    ("2025-03-04T20:59:59+00:00", date(2025, 3, 4)),  # 15:59:59 EST: before the close
    ("2025-03-04T21:00:00+00:00", date(2025, 3, 5)),  # 16:00 EST: the close itself counts for the next session
    ("2025-03-10T19:59:00+00:00", date(2025, 3, 10)),  # 15:59 EDT (daylight saving since the 9th)
    ("2025-03-10T20:00:00+00:00", date(2025, 3, 11)),  # 16:00 EDT
    ("2025-03-07T22:00:00+00:00", date(2025, 3, 10)),  # Friday evening -> Monday
    ("2025-03-08T15:00:00+00:00", date(2025, 3, 10)),  # Saturday -> Monday
    ("2025-03-10T03:00:00+00:00", date(2025, 3, 10)),  # Sunday 23:00 EDT -> Monday
    ("2025-04-17T20:30:00+00:00", date(2025, 4, 21)),  # Thursday after the close; Good Friday closed -> Monday
    ("2025-07-03T21:00:00+00:00", date(2025, 7, 7)),  # after the close before July 4th (a Friday) -> Monday
    ("2025-07-04T14:00:00+00:00", date(2025, 7, 7)),  # on the holiday itself
    ("2025-07-08T10:00:00+00:00", None),  # after the calendar's last day: no session yet
])
def test_posts_and_alerts_count_for_the_session_their_time_can_still_move(at, expected, calendar_db):
    ts = datetime.fromisoformat(at)
    assert CALENDAR[-1] == date(2025, 7, 7)
    assert session_day(ts, CALENDAR) == expected
    calendar_db.execute("CREATE OR REPLACE TEMP TABLE t AS SELECT ?::TIMESTAMPTZ AS published_at", [ts])
    rows = calendar_db.execute(f"SELECT session FROM {session_sql('t', 'published_at')}").fetchall()
    assert rows == ([] if expected is None else [(expected,)])  # the study's SQL agrees


@pytest.fixture(scope="module")
def calendar_db():
    con = duckdb.connect()
    con.execute("CREATE TABLE calendar AS SELECT unnest(?::DATE[]) AS day", [CALENDAR])
    yield con
    con.close()


# -- the command on a lake ---------------------------------------------------------------------
def news_alerts(lake, universe, severities=("high", "critical")) -> int:
    """One alert per planted news burst, raised an hour after it began (before the close)."""
    alerts = []
    for i, b in enumerate(b for b in universe.bursts if b.kind == "news"):
        end = b.at + timedelta(hours=1)
        alerts.append(AlertRecord(
            alert_id=f"a-{i}", key_kind="company" if i % 2 else "ticker", key=b.company, bucket_width="1 hour",
            window_start=end - timedelta(hours=1), window_end=end, volume=30, negatives=25, observed_share=0.8,
            baseline_share=0.2, ratio=4.0, delta=0.6, z=8.0, p_value=1e-9, severity=severities[i % len(severities)],
            example_ids=[], created_at=end).model_dump())
    tables.append(lake, "alerts", tables.rows_table("alerts", alerts, [f"{a['created_at']:%Y-%m-%d}" for a in alerts]))
    return len(alerts)


SMALL = {"companies": 20, "sessions": 70, "burst": (25, 25), "burst_minutes": (45.0, 45.0), "news_per_company": 5,
         "noise": 0.004, "market_noise": 0.004, "drift": DRIFT}


@pytest.fixture(scope="module")
def planted_lake(tmp_path_factory):
    lake = tmp_path_factory.mktemp("signal") / "lake"
    universe = synthetic_universe(lake, seed=11, **SMALL)
    return lake, universe, news_alerts(lake, universe)


def test_the_study_recovers_the_planted_drop_after_alerts_by_severity(planted_lake):
    lake, universe, n = planted_lake
    report = run_signal(lake, SignalSettings(benchmark="SPY"))  # the synthetic market factor itself
    a = report["alerts"]
    assert a["events"] == n - a["skipped"]["same_session"] and a["events"] > 40
    after = a["car_+1_+5"]
    # planted -3% in sessions +1..+3; 0.4% daily noise on each side of the abnormal return
    assert after["alerts"]["mean"] == pytest.approx(DRIFT, abs=0.005) and after["alerts"]["t"] < -8
    assert after["alerts"]["share_below_-2%"] > 0.6  # N(-3%, 0.9%) is below -2% 87% of the time
    # every company-day: the planted drops are in some of their windows too (events on ~4% of the days)
    ref = after["reference"]
    assert -0.012 < ref["mean"] < 0.0 and ref["share_below_-2%"] < after["alerts"]["share_below_-2%"] / 2
    assert {s: v["n"] > 15 for s, v in after["by_severity"].items()} == {"medium": False, "high": True,
                                                                         "critical": True}
    around = a["car_-1_+1"]["alerts"]  # reaction -1% on day 0 and -1% on day +1
    assert around["mean"] == pytest.approx(-0.02, abs=0.005)
    ic = report["ic"]
    # the IC itself is checked on matrices above; here: each horizon over the sessions that have one
    assert {h: v["days"] for h, v in ic.items()} == {"0": 69, "1": 69, "5": 65}
    assert set(ic["1"]["by_field"]) == {"score", "volume", "negative_share"}
    assert report["universe"]["companies"] == 20 and report["period"]["sessions"] == 70
    assert report["universe"]["market"] == "benchmark SPY"
    # against the equal-weighted market of the other companies (the default) the drop is still there, but
    # smaller: the planted drops of other companies (-4% on ~4% of company-days) pull that market down by
    # ~0.15% a session, which a CAR over 5 sessions gives back
    ew = run_signal(lake, SignalSettings())["alerts"]["car_+1_+5"]["alerts"]
    assert -0.035 < ew["mean"] < -0.012 and ew["t"] < -5


def test_shuffled_effect_dates_recover_nothing(tmp_path):
    lake = tmp_path / "lake"
    universe = synthetic_universe(lake, seed=11, shuffle_effects=True, **SMALL)
    news_alerts(lake, universe)
    window = run_signal(lake, SignalSettings(benchmark="SPY"))["alerts"]["car_+1_+5"]
    after, ref = window["alerts"], window["reference"]
    # the same drops are planted, on other sessions: after an alert the stock does what any stock does
    assert abs(after["mean"] - ref["mean"]) < 0.006 and after["mean"] > -0.02
    assert abs(after["share_below_-2%"] - ref["share_below_-2%"]) < 0.15


def test_copies_count_once_as_stories_and_every_time_as_posts(planted_lake):
    lake, universe, _ = planted_lake
    copies = next(b for b in universe.bursts if b.kind == "copies")
    con = connect(lake)
    try:
        stories, _, _ = run_study(con, SignalSettings())
        posts, _, _ = run_study(con, SignalSettings(unit="post"))
    finally:
        con.close()
    c = stories.companies.index(copies.company)
    t = stories.calendar.index(session_day(copies.at, stories.calendar))
    assert posts.stories[c, t] - stories.stories[c, t] == 40 - 1  # the 40 copies are one story


def test_period_and_weekly_bucket(planted_lake):
    lake, universe, _ = planted_lake
    cal = universe.calendar
    since = datetime(cal[20].year, cal[20].month, cal[20].day, tzinfo=UTC)
    until = datetime(cal[40].year, cal[40].month, cal[40].day, tzinfo=UTC)
    report = run_signal(lake, SignalSettings(since=since, until=until, bucket="week"))
    assert report["period"]["first_session"] == str(cal[20]) and report["period"]["last_session"] == str(cal[39])
    assert 2 <= report["ic"]["0"]["days"] <= 5  # four weeks of sessions


def test_cli_signal_json_and_table(planted_lake):
    lake, _, _ = planted_lake
    result = CliRunner().invoke(main, ["signal", "--lake", str(lake), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["ic"]) == {"0", "1", "5"}
    assert set(report["ic"]["1"]) >= {"ic", "t", "days"} and report["ic"]["1"]["days"] == 69
    assert {"car_-1_+1", "car_+1_+5"} <= set(report["alerts"])
    assert set(report["alerts"]["car_+1_+5"]["alerts"]) == {"mean", "t", "n", "share_below_-2%"}
    table = CliRunner().invoke(main, ["signal", "--lake", str(lake)])
    assert table.exit_code == 0 and "information coefficient" in table.output and "car_+1_+5" in table.output


def test_cli_signal_refuses_bad_options_no_lake_and_no_prices(tmp_path, planted_lake):
    lake, _, _ = planted_lake
    bad = CliRunner().invoke(main, ["signal", "--lake", str(lake), "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output and "e.g. 2026-11-02T09:00:00Z" in bad.output
    bad = CliRunner().invoke(main, ["signal", "--lake", str(lake), "--benchmark", "QQQ"])
    assert bad.exit_code == 1 and "benchmark QQQ has no prices" in bad.output and "--benchmark QQQ" in bad.output
    bad = CliRunner().invoke(main, ["signal", "--lake", str(lake), "--min-names", "1"])
    assert bad.exit_code == 2 and "--min-names" in bad.output
    nowhere = CliRunner().invoke(main, ["signal", "--lake", str(tmp_path / "nowhere")])
    assert nowhere.exit_code == 2 and "no finpulse lake at" in nowhere.output
    from support.lakefixtures import post, write_posts

    write_posts(tmp_path / "plain", [post("p1", 0, "negative", ("AAPL",))])
    unpriced = CliRunner().invoke(main, ["signal", "--lake", str(tmp_path / "plain")])
    assert unpriced.exit_code == 1 and "finpulse prices load" in unpriced.output


def test_compare_detectors_chooses_on_one_period_and_reports_on_the_other(planted_lake):
    from finpulse.pipeline.devtools.signal_choice import compare_detectors

    lake, universe, _ = planted_lake
    cal = universe.calendar
    at = [datetime(d.year, d.month, d.day, 21, tzinfo=UTC) for d in (cal[0], cal[35], cal[-1])]
    alternatives = {"defaults": {}, "count posts": {"unit": "post"}}
    result = compare_detectors(lake, (at[0], at[1]), (at[1], at[2]), alternatives)
    assert result["chosen"] == "defaults"  # the copies bursts (no price effect) alert only when posts count
    stories, posts = (result["alternatives"][n]["confirm"] for n in ("defaults", "count posts"))
    assert posts["alerts"] > stories["alerts"] > 10
    assert stories["car_+1_+5"]["mean"] < posts["car_+1_+5"]["mean"] < 0
    assert set(result["reported_on_confirm"]) == {"defaults"}
    with pytest.raises(ValueError, match="overlap"):
        compare_detectors(lake, (at[0], at[2]), (at[1], at[2]), alternatives)
