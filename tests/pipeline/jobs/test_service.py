"""Running it like a service: the bundle bound, Prometheus metrics, /healthz and /readyz.

The stream tests run `finpulse stream` as a process against the real embedded broker and read
its metrics endpoint over HTTP on 127.0.0.1; they assert counts and bounds, never timings.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from support.http import free_port, get, scrape  # noqa: F401
from support.processes import StreamProcess, lake_rows, posts, send, wait_until

from finpulse.pipeline.lake.query import run_query
from finpulse.pipeline.runtime.metrics import dead_letter_reason
from finpulse.pipeline.sources.kafka import BundleBudget


# -- the bundle budget, without a broker ------------------------------------------------------------
def _bundle(budget: BundleBudget, backlog: list[int]) -> list[int]:
    """One bundle over partitions with these backlogs; returns what each read (and drains it)."""
    budget.start(0.0)
    got = []
    for i, left in enumerate(backlog):
        granted = budget.grant()
        n = min(granted, left, 500)  # a poll returns what is there, up to the grant
        budget.spend(n, granted)
        backlog[i] -= n
        got.append(n)
    return got


def test_the_bundle_budget_bounds_a_bundle_whatever_the_number_of_partitions():
    for partitions in (1, 3, 6, 24, 300):
        budget = BundleBudget(records=256, seconds=1.0, partitions=partitions)
        backlog = [10_000] * partitions
        for _ in range(5):
            assert sum(_bundle(budget, backlog)) <= 256
        assert budget.largest <= 256


def test_one_busy_partition_gets_the_whole_budget_and_nobody_starves():
    budget = BundleBudget(records=240, seconds=1.0, partitions=6, initial=240)
    backlog = [5000, 0, 0, 0, 0, 0]
    _bundle(budget, backlog)  # the first bundle shares over all 6 partitions
    assert _bundle(budget, backlog)[0] == 240  # then the only partition with records gets all of it
    backlog[1:] = [5000] * 5  # the others wake up: one bundle of catching up, then fair shares
    _bundle(budget, backlog)
    assert _bundle(budget, backlog) == [40] * 6


def test_the_bundle_limit_starts_small_shrinks_when_bundles_run_long_and_grows_to_the_cap():
    budget = BundleBudget(records=256, seconds=1.0, partitions=1)
    limits = []
    for now, read_all in [
        (0.0, True),
        (4.0, True),
        (4.5, True),
        (4.51, True),
        (4.52, True),
        (4.53, True),
        (4.54, False),
        (9.0, True),
        (13.0, True),
    ]:
        budget.start(now)
        limits.append(budget.limit)
        granted = budget.grant()
        budget.spend(granted if read_all else granted // 2, granted)
    # 32 first; 32 records took 4 s -> 16 (the floor); 16 in 0.5 s -> 32; then at most doubling to
    # the cap; a bundle its partitions did not fill says nothing about capacity (kept); 256 records
    # in 4 s -> 64, what one second holds
    assert limits == [32, 16, 32, 64, 128, 256, 256, 256, 64]
    assert budget.largest <= 256


def test_bundles_grow_past_the_cap_only_while_the_stream_is_behind():
    """A backlog the bundles do not clear: they pace to catchup_seconds under catchup_records; once the
    partitions have nothing more waiting, the next bundle is back under `records`."""
    budget = BundleBudget(records=256, seconds=1.0, partitions=2, catchup_records=2048, catchup_seconds=5.0)
    backlog = [20_000, 20_000]
    limits, now = [], 0.0
    for _ in range(12):
        budget.start(now)
        limits.append(budget.limit)
        for i in range(2):
            granted = budget.grant()
            n = min(granted, backlog[i])
            budget.spend(n, granted)
            backlog[i] -= n
            budget.waiting(backlog[i])
        now += (budget.limit - budget.left) / 400  # this machine enriches 400 records a second
    assert limits[:4] == [32, 64, 128, 256] and 1024 < max(limits) <= 2048  # paced: 5 s at 400/s is 2,000
    assert budget.largest == max(limits)
    assert sum(backlog) > 0  # still behind after 12 bundles
    # caught up: the last bundle took everything that was there
    budget.start(now)
    for _ in range(2):
        granted = budget.grant()
        budget.spend(min(granted, 300), granted)
        budget.waiting(0)
    now += 0.5
    budget.start(now)
    assert budget.limit <= 256 and not budget.behind
    # the same stream with catching up off never passes `records`
    off = BundleBudget(records=256, seconds=1.0, partitions=2)
    backlog, now = [20_000, 20_000], 0.0
    for _ in range(12):
        off.start(now)
        for i in range(2):
            granted = off.grant()
            off.spend(min(granted, backlog[i]), granted)
            backlog[i] -= min(granted, backlog[i])
            off.waiting(backlog[i])
        now += (off.limit - off.left) / 400
    assert off.largest == 256


def test_a_bundle_stops_waiting_on_empty_partitions_when_its_time_is_up():
    budget = BundleBudget(records=256, seconds=1.0, partitions=6)
    budget.start(100.0)
    assert budget.poll_timeout_ms(100.0) == 250
    assert budget.poll_timeout_ms(100.9) == 100
    assert budget.poll_timeout_ms(101.5) == 0


def test_dead_letter_reasons_are_a_closed_vocabulary():
    assert dead_letter_reason("message is 2,097,152 bytes, over the 1,048,576-byte limit") == "oversized"
    assert dead_letter_reason("not valid JSON: Expecting value") == "not_json"
    assert dead_letter_reason("invalid record: published_at: bad") == "timestamp"
    assert dead_letter_reason("something new") == "other"


# -- a real stream ---------------------------------------------------------------------------------






@pytest.mark.slow
def test_metrics_lag_falls_to_zero_rows_match_the_lake_and_readyz_follows_the_broker(tmp_path):
    """120 posts and 12 bad messages on 3 partitions: the endpoint shows lag, then lag 0 on every
    partition with row and dead-letter counters equal to the lake's; /readyz fails while the
    broker is down and recovers when it is back."""
    from finpulse.infra.broker import EmbeddedBroker

    b = EmbeddedBroker(log_file=tmp_path / "broker.log").start()
    try:
        bad = [b"not json"] * 6 + [b'{"text": "   "}'] * 6
        send(b.bootstrap, "svc-news", posts(120, "svc", seed=8) + bad)
        lake, port = tmp_path / "lake", free_port()
        proc = StreamProcess(
            b.bootstrap, ["svc-news"], lake, "--metrics-port", str(port), "--idle-exit", "300", log=tmp_path / "run.log"
        )
        seen_lag: list[float] = []

        def caught_up() -> bool:
            assert proc.alive(), proc.output()[-3000:]
            try:
                m = scrape(port)
            except OSError:
                return False
            lags = [v for k, v in m.items() if k.startswith("finpulse_consumer_lag{")]
            seen_lag.append(sum(lags))
            return len(lags) == 3 and sum(lags) == 0 and m.get('finpulse_rows_total{table="enriched"}') == 120

        wait_until(caught_up, 300, "lag 0 and 120 rows on /metrics", interval=0.3)
        assert max(seen_lag) > 0, "the endpoint never showed the backlog as lag"
        m = scrape(port)
        assert m['finpulse_rows_total{table="enriched"}'] == lake_rows(lake) == 120
        assert m['finpulse_rows_total{table="deadletter"}'] == lake_rows(lake, "deadletter") == 12
        assert m['finpulse_dead_letters_total{reason="not_json"}'] == 6
        assert m['finpulse_dead_letters_total{reason="text"}'] == 6
        assert m["finpulse_end_to_end_seconds_count"] == 132
        assert m["finpulse_model_batch_size_sum"] == 120
        assert m["finpulse_bundle_records_sum"] == 132
        assert get(port, "/healthz") == (200, "ok\n")
        status, body = get(port, "/readyz")
        assert status == 200 and body["ready"] and set(body["checks"]) == {"broker", "lake", "progress"}, body

        b.stop()
        wait_until(lambda: get(port, "/readyz")[0] == 503, 60, "/readyz to fail with the broker down")
        status, body = get(port, "/readyz")
        assert body["checks"]["broker"]["ok"] is False and body["checks"]["lake"]["ok"] is True, body
        assert get(port, "/healthz")[0] == 200  # alive, just not ready
        b.start()
        wait_until(lambda: get(port, "/readyz")[0] == 200, 60, "/readyz to recover with the broker back")
        assert proc.alive()
        proc.kill()
    finally:
        b.stop()


@pytest.mark.slow
def test_a_stream_on_a_10000_record_backlog_commits_in_bounded_bundles_while_catching_up(broker, tmp_path,
                                                                                        monkeypatch):
    """10,000 records on 6 partitions; the stream stops after 300 of them. Behind, bundles grow past
    --bundle-records but never past --catchup-records, there are several commits before the backlog
    is read, and every partition progressed (the budget is shared fairly)."""
    send(broker.bootstrap, "backlog", posts(10_000, "bl", seed=9), partitions=6)
    lake = tmp_path / "lake"
    monkeypatch.setenv("FINPULSE_CATCHUP_SECONDS", "60")  # pace for growth even on a loaded CI machine
    proc = StreamProcess(
        broker.bootstrap, ["backlog"], lake, "--bundle-records", "50", "--catchup-records", "100",
        "--max-records", "300", log=tmp_path / "run.log"
    )
    assert proc.wait(300) == 0, proc.output()[-3000:]
    bundles = [int(n) for n in re.findall(r"bundle committed (\d+) records", proc.output())]
    assert sum(bundles) == lake_rows(lake) == 300
    assert 50 < max(bundles) <= 100, bundles
    assert len(bundles) >= 4, bundles
    per_partition = run_query(
        lake, "select kafka_partition p, count(*) n from enriched group by 1 order by 1"
    ).to_pylist()
    assert [r["p"] for r in per_partition] == list(range(6)), per_partition


def test_status_shows_lag_per_partition_rows_and_dead_letters_today_and_the_latest_alerts(broker, tmp_path):
    """30 messages on 3 partitions; the lake has committed 4 of partition 0 (3 rows, 1 dead
    letter) plus the alert lake of test_alerts: lag 6/10/10, today's counts, the AAPL alert."""
    from click.testing import CliRunner
    from support.alerts import T0, post, spiky_lake

    from finpulse.pipeline.alerts.evaluate import run_alerts
    from finpulse.pipeline.cli.main import main
    from finpulse.pipeline.cli.status import collect
    from finpulse.pipeline.lake.commit import Lake, Row, source_key
    from finpulse.pipeline.runtime.settings import AlertSettings

    send(broker.bootstrap, "st-news", [b"x"] * 30, partitions=3)
    lake = spiky_lake(tmp_path)
    run_alerts(str(lake), AlertSettings())
    source = source_key("st-news", 0)
    dead = {"raw": b"x", "raw_size": 1, "error": "not valid JSON", "stage": "parse", "ingested_at": T0}
    rows = [Row("enriched", post(700_000 + i, 1, False).data, source, i, "2026-11-02") for i in range(3)]
    Lake(lake).commit(source, 0, 4, rows + [Row("deadletter", dead, source, 3, "2026-11-02")])
    s = collect(str(lake), {"bootstrap_servers": [broker.bootstrap]}, ["st-news"], now=T0 + timedelta(hours=12))
    assert [(p["partition"], p["end"], p["committed"], p["lag"]) for p in s["lag"]] == [
        (0, 10, 4, 6),
        (1, 10, 0, 10),
        (2, 10, 0, 10),
    ]
    assert (s["rows_today"], s["dead_letters_today"]) == (
        2 * 36 * 30 + 3,
        1,
    )  # the spiky lake's rows: ingested that day too
    assert [a["key"] for a in s["latest_alerts"]] == ["company:AAPL"]
    assert s["last_commit_age_s"] is not None
    out = CliRunner().invoke(
        main, ["status", "--lake", str(lake), "--bootstrap", broker.bootstrap, "--topics", "st-news"]
    )
    assert out.exit_code == 0, out.output
    assert "lag per partition (total 26)" in out.output and "company:AAPL" in out.output


def test_dashboard_and_alert_rules_use_only_exported_metrics_and_compose_scrapes_the_served_ports():
    """The Grafana panels and Prometheus rules name metrics the code exports (a renamed metric
    fails here, not on a dark dashboard); the scrape targets are the ports compose serves on."""
    from pathlib import Path

    import yaml
    from prometheus_client import REGISTRY

    from finpulse.pipeline.runtime import metrics

    metrics._build()
    exported = set()
    for family in REGISTRY.collect():
        if family.name.startswith("finpulse_"):
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
            exported |= {family.name + s for s in suffixes}
    infra = Path(__file__).resolve().parents[3] / "infra"
    dashboard = json.loads((infra / "grafana/dashboards/finpulse.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((infra / "prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    exprs += [r["expr"] for r in rules]
    used = {name for e in exprs for name in re.findall(r"finpulse_\w+", e)}
    assert used and used <= exported, used - exported
    assert {"finpulse_consumer_lag", "finpulse_last_commit_age_seconds", "finpulse_dead_letters_total"} <= used
    compose = yaml.safe_load((infra / "docker-compose.yml").read_text())["services"]
    targets = {
        t
        for job in yaml.safe_load((infra / "prometheus/prometheus.yml").read_text())["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    for service in ("stream", "alerts"):
        command = compose[service]["command"]
        assert f"{service}:{command[command.index('--metrics-port') + 1]}" in targets
