"""Alert routing: the pure rules, then real apprise delivery to local HTTP receivers on 127.0.0.1.

The receivers stand in for Slack: apprise's `json://` schema POSTs {title, message, type}.
Kill tests SIGKILL a real `finpulse alerts` process between recording and delivery.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.alerts import (  # noqa: F401
    T0,
    W0,  # noqa: E402,F401
    notice,
    post,
    routes_file,
)

from finpulse.pipeline.alerts.evaluate import run_alerts
from finpulse.pipeline.alerts.routes import (
    Episode,
    Example,
    Latest,
    Notice,
    RoutesError,
    classify,
    decide,
    in_quiet_hours,
    is_resolved,
    load_routes,
    matches,
    message,
    open_episodes,
    parse_routes,
)
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.runtime.settings import AlertSettings


# -- pure rules ------------------------------------------------------------------------------------
def test_a_route_matches_by_severity_key_and_key_kind():
    routes = parse_routes(
        {
            "route": [
                {
                    "name": "desk",
                    "urls": ["json://127.0.0.1:1/x"],
                    "severities": ["high", "critical"],
                    "keys": ["AAPL"],
                    "key_kinds": ["ticker"],
                },
                {"name": "all", "urls": ["json://127.0.0.1:1/y"], "resolved": False},
            ]
        }
    )
    desk, everything = routes.routes
    assert matches(desk, notice()) and matches(desk, notice(kind="resolved"))
    assert not matches(desk, notice(severity="medium"))
    assert not matches(desk, notice(key="MSFT"))
    assert not matches(desk, notice(key_kind="topic"))
    assert matches(everything, notice(severity="medium", key="MSFT", key_kind="topic"))
    assert not matches(everything, notice(kind="resolved"))


def test_routes_file_errors_are_named(tmp_path):
    bad = tmp_path / "routes.toml"
    for text, words in [
        ('[[route]]\nname = "x"\n', "apprise URL"),
        ('[[route]]\nurls = ["json://h/x"]\nseverities = ["urgent"]\n', "unknown severity"),
        ('[[route]]\nurls = ["json://h/x"]\nrate_limit = "lots"\n', "rate_limit"),
        ('[[route]]\nurls = ["json://h/x"]\ntimezone = "Mars/Base"\n', "timezone"),
        ("[[route]\n", "cannot read"),
    ]:
        bad.write_text(text)
        with pytest.raises(RoutesError, match=words):
            load_routes(bad)


def test_quiet_hours_cross_midnight_in_the_route_timezone_and_critical_breaks_through():
    [route] = parse_routes(
        {"route": [{"urls": ["json://h/x"], "quiet_hours": "22:00-07:00", "timezone": "America/New_York"}]}
    ).routes
    late = datetime(2026, 11, 3, 4, 30, tzinfo=timezone.utc)  # 23:30 in New York
    morning = datetime(2026, 11, 3, 13, 0, tzinfo=timezone.utc)  # 08:00 in New York
    assert in_quiet_hours(route, late) and not in_quiet_hours(route, morning)
    assert decide(route, notice(severity="high"), late, []) == "quiet"
    assert decide(route, notice(severity="critical"), late, []) == "send"
    assert decide(route, notice(severity="high"), morning, []) == "send"


def test_notices_about_windows_older_than_max_age_are_skipped_not_sent():
    [route] = parse_routes({"route": [{"urls": ["json://h/x"], "max_age": "6 hours"}]}).routes
    assert route.max_age == 6 * 3600
    assert decide(route, notice(), W0 + timedelta(hours=6), []) == "send"  # the window ended 5 hours before
    assert decide(route, notice(), W0 + timedelta(hours=8), []) == "stale"
    [no_limit] = parse_routes({"route": [{"urls": ["json://h/x"]}]}).routes
    assert decide(no_limit, notice(), W0 + timedelta(days=300), []) == "send"


def test_the_rate_limit_holds_what_exceeds_it_within_the_window():
    [route] = parse_routes({"route": [{"urls": ["json://h/x"], "rate_limit": "2/hour"}]}).routes
    now = datetime(2026, 11, 3, 12, 0, tzinfo=timezone.utc)
    recent = [now.timestamp() - 600, now.timestamp() - 1200]
    assert decide(route, notice(), now, recent) == "rate"
    assert decide(route, notice(), now, [now.timestamp() - 3700, now.timestamp() - 600]) == "send"


def test_episodes_escalate_on_higher_severity_and_resolve_near_the_baseline():
    log = [notice(severity="medium", alert_id="a-1")]
    episode = open_episodes(log)[("ticker", "AAPL")]
    assert classify("critical", episode) == "escalation" and classify("medium", episode) == "ongoing"
    assert classify("medium", None) == "alert"
    later = W0 + timedelta(hours=2)
    assert is_resolved(episode, Latest(later, 30, 0.22))
    assert not is_resolved(episode, Latest(later, 30, 0.40))  # still far above the 0.20 baseline
    assert not is_resolved(episode, Latest(later, 5, 0.0))  # too few posts to judge
    assert not is_resolved(episode, Latest(W0, 30, 0.2))  # inside the alert's own window
    assert open_episodes(log + [notice(kind="resolved", alert_id="a-1")]) == {}
    assert isinstance(episode, Episode)


def test_the_message_carries_company_shares_stories_examples_and_a_filtered_dashboard_link():
    n = notice(stories=7, examples=(Example("p1", "Boeing halts deliveries after fault", "reuters", "https://r/1"),))
    title, body = message(n, "http://127.0.0.1:8501")
    assert title == "[HIGH] negative spike on AAPL"
    assert "Negative share 50% vs baseline 20% (2.5x) over 30 posts" in body
    assert "7 distinct stories" in body
    assert "- Boeing halts deliveries after fault (reuters) https://r/1" in body
    assert "http://127.0.0.1:8501/?ticker=AAPL&from=2026-11-03&to=2026-11-03" in body
    assert message(notice(kind="resolved"))[0] == "[RESOLVED] AAPL back near baseline"


# -- real delivery ---------------------------------------------------------------------------------
class Receiver:
    """A local HTTP server standing in for Slack; `failing` makes it answer 500."""

    def __init__(self, failing: bool = False) -> None:
        self.messages: list[dict] = []
        self.attempts = 0
        self.failing = failing
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.attempts += 1
                if not outer.failing:
                    outer.messages.append(body)
                self.send_response(500 if outer.failing else 200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_port}/hook"

    def titles(self) -> list[str]:
        return [m["title"] for m in self.messages]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(failing: bool = False) -> Receiver:
        made.append(Receiver(failing))
        return made[-1]

    yield make
    for r in made:
        r.close()


def add_hours(lake: Path, hours: dict[int, int], first: int = 0) -> None:
    """Hours of AAPL (30 posts, `negatives` of them negative) and MSFT (steady), committed as one source each."""
    rows = []
    for hour, negatives in hours.items():
        for j in range(30):
            rows.append(post(hour * 100 + j, hour, j < negatives))
            rows.append(post(900_000 + hour * 100 + j, hour, j < 6, ticker="MSFT"))
    source = f"hours-{first}"
    Lake(lake).commit(source, 0, len(rows), [Row("enriched", r.data, source, i, r.date) for i, r in enumerate(rows)])




def test_alert_escalation_and_resolution_each_reach_slack_once_and_a_failing_destination_waits_alone(
    tmp_path, receivers
):
    """AAPL turns medium-negative (alert), then critical (escalation), then back to normal
    (resolved): the desk's receiver gets three messages in that order, once each, over five
    passes. A destination that fails, listed first, gets nothing until it recovers and then
    gets all three in order; the MSFT route gets nothing."""
    slack, broken, other = receivers(), receivers(failing=True), receivers()
    routes = load_routes(
        routes_file(
            tmp_path,
            {"name": "desk", "urls": [broken.url, slack.url], "keys": ["AAPL"]},
            {"name": "msft", "urls": [other.url], "keys": ["MSFT"]},
        )
    )
    lake = tmp_path / "lake"
    add_hours(lake, {h: 6 for h in range(30)})
    assert run_alerts(str(lake), AlertSettings(), routes=routes) == []
    add_hours(lake, {30: 15}, first=30)
    assert [a.severity for a in run_alerts(str(lake), AlertSettings(), routes=routes)] == ["medium"]
    add_hours(lake, {31: 27}, first=31)
    assert [a.severity for a in run_alerts(str(lake), AlertSettings(), routes=routes)] == ["critical"]
    add_hours(lake, {32: 6}, first=32)
    run_alerts(str(lake), AlertSettings(), routes=routes)
    run_alerts(str(lake), AlertSettings(), routes=routes)  # nothing new: nothing sent twice
    expected = [
        "[MEDIUM] negative spike on AAPL",
        "[CRITICAL] escalated: negative spike on AAPL",
        "[RESOLVED] AAPL back near baseline",
    ]
    assert slack.titles() == expected
    assert "Negative share 50% vs baseline 20%" in slack.messages[0]["message"]
    assert "?ticker=AAPL&from=2026-11-03" in slack.messages[0]["message"]
    assert broken.messages == [] and broken.attempts >= 5
    assert other.messages == []
    broken.failing = False
    run_alerts(str(lake), AlertSettings(), routes=routes)
    assert broken.titles() == expected and slack.titles() == expected


KILLER = """
import os, signal, sys
from finpulse.pipeline.alerts import notify
point = sys.argv[1]
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "recorded":
    notify.pass_after_record = die   # alerts are in the lake; no notice planned, nothing sent
else:
    notify.deliver = die             # notices are in the outbox; nothing sent
from finpulse.pipeline.cli.main import main
main(sys.argv[2:])
"""


@pytest.mark.slow  # a real process killed per case
@pytest.mark.parametrize("point,first_pass", [("recorded", False), ("planned", False), ("recorded", True)])
def test_a_sigkill_between_recording_and_delivery_still_delivers_once(tmp_path, receivers, point, first_pass):
    """`finpulse alerts --routes` is SIGKILLed after recording a new alert and before planning its
    notice, or after planning and before sending, or (first_pass) on the very first pass with
    routes on this lake; the next pass delivers it, once, and the one after sends nothing."""
    slack = receivers()
    routes = routes_file(tmp_path, {"name": "desk", "urls": [slack.url], "keys": ["AAPL"]})
    lake = tmp_path / "lake"
    add_hours(lake, {h: 6 for h in range(30)})
    if not first_pass:
        assert run_alerts(str(lake), AlertSettings(), routes=load_routes(routes)) == []  # routing begins: nothing yet
    add_hours(lake, {30: 21}, first=30)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, point, "alerts", "--lake", str(lake), "--routes", str(routes)],
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert slack.messages == []
    assert len(run_alerts(str(lake), AlertSettings(), routes=load_routes(routes))) == 0  # recorded by the killed run
    run_alerts(str(lake), AlertSettings(), routes=load_routes(routes))  # one more pass sends nothing again
    assert [m["title"] for m in slack.messages] == ["[CRITICAL] negative spike on AAPL"]


@pytest.mark.slow  # runs `finpulse alerts --follow` as a process
def test_the_alerts_follower_serves_alert_and_delivery_metrics(tmp_path, receivers):
    """`alerts --follow --routes --metrics-port`: the endpoint counts the alert by severity and the
    delivery by route and outcome, and /readyz is 200 while evaluations keep running."""
    from support.http import free_port, get, scrape

    slack = receivers()
    routes = routes_file(tmp_path, {"name": "desk", "urls": [slack.url], "keys": ["AAPL"]})
    lake = tmp_path / "lake"
    add_hours(lake, {h: 6 for h in range(30)})
    run_alerts(str(lake), AlertSettings(), routes=load_routes(routes))  # routing begins before the spike
    add_hours(lake, {30: 21}, first=30)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "finpulse.pipeline.cli", "alerts", "--lake", str(lake), "--follow",
                             "--interval", "1", "--routes", str(routes), "--metrics-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from support.processes import wait_until

        def delivered() -> bool:
            try:
                m = scrape(port)
            except OSError:
                return False
            return m.get('finpulse_notifications_total{outcome="sent",route="desk"}') == 1

        wait_until(delivered, 90, "the delivery on /metrics")
        m = scrape(port)
        assert m['finpulse_alerts_total{severity="critical"}'] == 1
        status, body = get(port, "/readyz")
        assert status == 200 and set(body["checks"]) == {"lake", "progress"}, body
        assert [x["title"] for x in slack.messages] == ["[CRITICAL] negative spike on AAPL"]
    finally:
        proc.kill()
        proc.wait()


def test_the_message_link_opens_the_dashboard_filtered_to_the_company_and_days(tmp_path, monkeypatch):
    """The link an alert message carries (`?ticker=BA&from=...&to=...`) seeds the dashboard's
    company and date filters: the page counts only that company's posts of those days."""
    from streamlit.testing.v1 import AppTest
    from support.lakefixtures import post as lake_post
    from support.lakefixtures import write_posts

    lake = tmp_path / "lake"
    write_posts(lake, [lake_post(f"ba-{i}", i, "negative", ("BA",)) for i in range(7)]
                + [lake_post(f"x-{i}", i, "neutral", ("MSFT",)) for i in range(5)])
    monkeypatch.setenv("FINPULSE_LAKE", str(lake))
    at = AppTest.from_file(str(Path(__file__).parents[3] / "dashboard" / "app.py"), default_timeout=60)
    at.query_params.update({"ticker": "BA", "from": "2026-03-02", "to": "2026-03-02"})
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["tickers"] == ["BA"] and at.session_state["range"] == "Custom"
    assert next(m.value for m in at.metric if m.label == "Posts in range") == "7"


def test_in_quiet_hours_a_critical_notice_goes_out_past_held_ones_and_they_follow_after(tmp_path):
    """Delivery with an in-process sender: during quiet hours the medium alert is held and the
    critical escalation behind it is sent; after the quiet hours the medium one follows, once."""
    from finpulse.pipeline.alerts.notify import deliver, open_outbox, record_notices

    routes = parse_routes({"route": [{"name": "desk", "urls": ["json://127.0.0.1:1/x"], "quiet_hours": "22:00-07:00"}]})
    lake = tmp_path / "lake"
    open_outbox(lake, routes, set())
    record_notices(lake, [notice(severity="medium", alert_id="a-1"), notice(kind="escalation", severity="critical",
                                                                           alert_id="a-2")])
    sent: list[str] = []

    def send(url: str, title: str, body: str) -> bool:
        sent.append(title)
        return True

    night, morning = datetime(2026, 11, 3, 23, 0, tzinfo=timezone.utc), datetime(2026, 11, 4, 8, 0, tzinfo=timezone.utc)
    assert deliver(lake, routes, night, send) == {"sent": 1, "held": 1, "failed": 0, "skipped": 0}
    assert sent == ["[CRITICAL] escalated: negative spike on AAPL"]
    assert deliver(lake, routes, morning, send) == {"sent": 1, "held": 0, "failed": 0, "skipped": 0}
    assert deliver(lake, routes, morning, send) == {"sent": 0, "held": 0, "failed": 0, "skipped": 0}
    assert sent == ["[CRITICAL] escalated: negative spike on AAPL", "[MEDIUM] negative spike on AAPL"]


def test_a_stale_notice_is_skipped_once_and_a_fresh_one_behind_it_is_sent(tmp_path):
    from finpulse.pipeline.alerts.notify import deliver, open_outbox, record_notices

    routes = parse_routes({"route": [{"name": "desk", "urls": ["json://127.0.0.1:1/x"], "max_age": "6 hours"}]})
    lake = tmp_path / "lake"
    open_outbox(lake, routes, set())
    fresh = Notice(**{**notice(alert_id="a-2").__dict__, "window_end": W0 + timedelta(hours=30)})
    record_notices(lake, [notice(alert_id="a-1"), fresh])
    sent: list[str] = []
    now = W0 + timedelta(hours=31)
    assert deliver(lake, routes, now, lambda url, title, body: sent.append(title) or True) == \
        {"sent": 1, "held": 0, "failed": 0, "skipped": 1}
    assert deliver(lake, routes, now, lambda url, title, body: sent.append(title) or True)["skipped"] == 0
    assert len(sent) == 1
