"""Monitoring with the real thing: finpulse's alert rules through `promtool` (syntax and unit cases
for the lag and stalled-commit rules), and a real Prometheus scraping a stream's /metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.processes import StreamProcess, posts, send, wait_until
from support.prometheus_server import Prometheus, binary, free_port

PROM = Path(__file__).resolve().parents[3] / "infra" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=60)


def test_the_alert_rules_pass_promtool_check_rules():
    done = promtool("check", "rules", str(PROM / "alerts.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_the_lag_and_stalled_commit_rules_fire_when_and_only_when_their_cases_say():
    """infra/prometheus/alerts_test.yml: lag over 10,000 for 10 minutes (summed per topic across
    processes) fires, a shorter burst does not; a stalled process with waiting records pages by
    instance, an idle group member and a caught-up stream do not."""
    done = promtool("test", "rules", str(PROM / "alerts_test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_stream_and_its_lag_query_falls_to_zero(broker, tmp_path):
    """90 posts on 3 partitions, one stream with --metrics-port, Prometheus scraping it every second:
    the lag query showed the backlog while it was read and is 0 once every row is in; the rows
    counter agrees with the feed; the rule files loaded healthy."""
    send(broker.bootstrap, "mon-news", posts(90, "mon", seed=5))
    port = free_port()
    stream = StreamProcess(broker.bootstrap, ["mon-news"], tmp_path / "lake", "--metrics-port", str(port),
                           "--idle-exit", "300", log=tmp_path / "stream.log")
    try:
        with Prometheus(tmp_path / "prom", {"finpulse-stream": [f"127.0.0.1:{port}"]}) as prom:
            def caught_up() -> bool:
                assert stream.alive(), stream.output()[-3000:]
                rows = prom.scalar('sum(finpulse_rows_total{job="finpulse-stream",table="enriched"})')
                lag = prom.scalar('sum(finpulse_consumer_lag{job="finpulse-stream"})')
                return rows == 90 and lag == 0

            wait_until(caught_up, 120, "Prometheus to see 90 rows and lag 0", detail=lambda: stream.output()[-3000:])
            assert prom.scalar('up{job="finpulse-stream"}') == 1
            seen = prom.query('max_over_time(finpulse_consumer_lag{job="finpulse-stream"}[5m])')
            assert len(seen) == 3 and sum(seen.values()) > 0, seen  # the backlog was visible as lag
            groups = prom.api("rules")["groups"]  # type: ignore[index]
            assert [r["health"] for g in groups for r in g["rules"]] == ["ok"] * 7
    finally:
        stream.kill()
