"""`finpulse alerts` over a lake: one alert per event, never twice, examples, webhook delivery."""

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from click.testing import CliRunner
from support.alerts import T0, post, spiky_lake  # noqa: F401

from finpulse.pipeline.alerts.delivery import post_webhook
from finpulse.pipeline.alerts.evaluate import alert_id, evaluate, run_alerts
from finpulse.pipeline.cli.main import main
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.query import run_query
from finpulse.pipeline.runtime.settings import AlertSettings


def test_one_alert_for_the_spike_with_examples_and_no_duplicates_on_rerun(tmp_path):
    lake = spiky_lake(tmp_path)
    first = run_alerts(str(lake), AlertSettings())
    assert [(a.key, a.window_start) for a in first] == [("AAPL", T0 + timedelta(hours=30))]
    a = first[0]
    assert (a.volume, a.negatives, a.observed_share) == (30, 21, 0.7) and abs(a.baseline_share - 0.2) < 0.01
    assert len(a.example_ids) == 5 and all(x.startswith("AAPL-") for x in a.example_ids)
    assert a.alert_id == alert_id("company", "AAPL", "1 hour", T0 + timedelta(hours=30))
    assert run_alerts(str(lake), AlertSettings()) == []  # re-run: nothing new
    assert run_query(lake, "select count(*) n from alerts").to_pylist() == [{"n": 1}]


def test_backtest_range_limits_reported_alerts(tmp_path):
    lake = spiky_lake(tmp_path)
    assert evaluate(lake, AlertSettings(until=T0 + timedelta(hours=30))) == []
    assert len(evaluate(lake, AlertSettings(since=T0 + timedelta(hours=29)))) == 1  # history still feeds the baseline


def test_an_alert_on_the_two_bucket_window_covers_both_buckets(tmp_path):
    lake = spiky_lake(tmp_path, spike={29: 13, 30: 13})  # neither hour is enough alone
    [a] = evaluate(lake, AlertSettings())
    assert (a.key, a.window_start, a.window_end, a.volume, a.negatives) == ("AAPL", T0 + timedelta(hours=29), T0 + timedelta(hours=31), 60, 26)
    assert a.alert_id == alert_id("company", "AAPL", "1 hour", T0 + timedelta(hours=29))  # named by the event's first window
    assert len(a.example_ids) == 5


def test_the_count_channel_season_is_a_day_of_buckets_whatever_the_width():
    from finpulse.pipeline.alerts.evaluate import seasonal
    from finpulse.pipeline.runtime.settings import DetectorConfig

    assert seasonal(DetectorConfig(), timedelta(minutes=15)).season_buckets == 96
    assert seasonal(DetectorConfig(), timedelta(hours=1)).season_buckets == 24
    assert seasonal(DetectorConfig(), timedelta(days=1)).season_buckets == 7  # a week for daily buckets


def test_alerts_command_prints_new_alerts(tmp_path):
    lake = spiky_lake(tmp_path)
    out = CliRunner().invoke(main, ["alerts", "--lake", str(lake)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout.strip().splitlines()[-1])[0]["key"] == "company:AAPL"


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    fail_first = 0

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
        else:
            _Hook.received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_delivery_retries_until_the_server_accepts(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _Hook.received, _Hook.fail_first = [], 2
        url = f"http://127.0.0.1:{server.server_port}/alerts"
        alert = evaluate(spiky_lake(tmp_path), AlertSettings())[0]
        assert post_webhook(url, alert, retries=3, backoff=0.01)
        assert [r["key"] for r in _Hook.received] == ["AAPL"]
        _Hook.fail_first = 10
        assert not post_webhook(url, alert, retries=1, backoff=0.01, timeout=1)
    finally:
        server.shutdown()


@pytest.mark.slow
def test_streaming_and_backfilling_the_same_feed_give_the_same_alerts(broker, tmp_path):
    """One feed with an injected event: streamed through Kafka into one lake, backfilled from a
    JSONL archive into another; both lakes raise exactly the same alerts."""
    import dataclasses

    import pytest
    from support.processes import StreamProcess, send

    from finpulse.pipeline.devtools.generator import Event, generate_posts
    from finpulse.pipeline.jobs.backfill import run_backfill
    from finpulse.pipeline.runtime.settings import DetectorConfig

    start = datetime(2026, 11, 2, tzinfo=timezone.utc)
    event = Event("BA", start + timedelta(hours=20, minutes=5), posts=50, minutes=30)
    feed = list(generate_posts(800, seed=21, start=start, span_hours=24, events=(event,)))
    archive = tmp_path / "feed.jsonl"
    archive.write_text("".join(json.dumps(p) + "\n" for p in feed))
    send(broker.bootstrap, "same-feed", [json.dumps(p).encode() for p in feed])
    streamed, backfilled = tmp_path / "streamed", tmp_path / "backfilled"
    proc = StreamProcess(broker.bootstrap, ["same-feed"], streamed, "--idle-exit", "5", log=tmp_path / "run.log")
    assert proc.wait(300) == 0, proc.output()[-3000:]
    run_backfill(str(archive), str(backfilled), progress=False)
    settings = AlertSettings(detector=dataclasses.replace(DetectorConfig(), min_history_posts=10))
    a = sorted((x.alert_id, x.volume, x.negatives, x.severity) for x in run_alerts(str(streamed), settings))
    b = sorted((x.alert_id, x.volume, x.negatives, x.severity) for x in run_alerts(str(backfilled), settings))
    assert a == b
    assert alert_id("company", "BA", "1 hour", start + timedelta(hours=20)) in {x[0] for x in a}
    if len(a) > 3:
        pytest.fail(f"background traffic raised {len(a) - 1} extra alerts: {a}")


def test_new_alerts_are_published_to_kafka(broker, tmp_path):
    from kafka import KafkaConsumer

    from finpulse.infra.broker import create_topics

    create_topics(broker.bootstrap, {"alerts-out": 1})
    lake = spiky_lake(tmp_path)
    new = run_alerts(str(lake), AlertSettings(), kafka_config={"bootstrap_servers": [broker.bootstrap]}, kafka_topic="alerts-out")
    consumer = KafkaConsumer("alerts-out", bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             group_id="alerts-test", consumer_timeout_ms=10000, session_timeout_ms=6000,
                             max_poll_interval_ms=6000)
    try:
        got = [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()
    assert [g["alert_id"] for g in got] == [a.alert_id for a in new] and got[0]["key"] == "AAPL"


def test_follow_mode_records_a_new_spike_once(tmp_path):
    import subprocess
    import sys
    import time

    lake = spiky_lake(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "finpulse.pipeline.cli", "alerts", "--lake", str(lake), "--follow",
                             "--interval", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while run_query(lake, "select count(*) n from alerts").to_pylist()[0]["n"] < 1:
            assert time.monotonic() < deadline and proc.poll() is None, "follow mode did not record the first spike"
            time.sleep(0.5)
        # a second event on MSFT arrives while it follows
        rows = [post(900000 + j, 33, True, ticker="MSFT") for j in range(25)]
        Lake(lake).commit("MSFT-late", 0, 25, [Row("enriched", r.data, "MSFT-late", k, r.date) for k, r in enumerate(rows)])
        while run_query(lake, "select count(*) n from alerts").to_pylist()[0]["n"] < 2:
            assert time.monotonic() < deadline, "follow mode did not pick up the new spike"
            time.sleep(0.5)
        time.sleep(3)  # several more evaluations: nothing may be written twice
        got = run_query(lake, "select key, count(*) n from alerts group by 1 order by 1").to_pylist()
        assert got == [{"key": "AAPL", "n": 1}, {"key": "MSFT", "n": 1}]
    finally:
        proc.kill()
        proc.wait()


def test_an_escalation_updates_the_same_alert_and_is_delivered_again(tmp_path):
    """Hour 30 reads medium, hour 31 critical: one event, so one alert (same id) at revision 1,
    not a second alert; the alerts view shows the latest revision and channels get the update."""
    from finpulse.pipeline.alerts.delivery import delivery_key, mark_delivered, pending

    lake = spiky_lake(tmp_path, spike={30: 15, 31: 29})
    [first] = run_alerts(str(lake), AlertSettings(until=T0 + timedelta(hours=31)))
    assert (first.severity, first.revision, first.window_start) == ("medium", 0, T0 + timedelta(hours=30))
    mark_delivered(str(lake), "hook", [delivery_key(first)])
    [update] = run_alerts(str(lake), AlertSettings())
    assert (update.alert_id, update.severity, update.revision) == (first.alert_id, "critical", 1)
    rows = run_query(lake, "select alert_id, severity, revision from alerts").to_pylist()
    assert rows == [{"alert_id": first.alert_id, "severity": "critical", "revision": 1}]
    assert [delivery_key(a) for a in pending(str(lake), "hook")] == [f"{first.alert_id}#1"]
    assert run_alerts(str(lake), AlertSettings()) == []  # nothing new on a rerun
