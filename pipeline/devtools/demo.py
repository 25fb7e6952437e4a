"""`finpulse demo`: the whole system on embedded defaults, end to end, in one command.

Broker (Tansu, in-memory) -> generated news/social feed -> streaming pipeline with the three
models -> Parquet lake -> DuckDB summary. Bounded by default so it finishes on its own.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from finpulse.infra.broker import EmbeddedBroker, create_topics
from finpulse.pipeline.alerts.evaluate import run_alerts
from finpulse.pipeline.devtools.generator import Event, generate_posts
from finpulse.pipeline.devtools.produce import post_messages, publish
from finpulse.pipeline.lake.query import run_query
from finpulse.pipeline.runtime.settings import AlertSettings, DetectorConfig

DEMO_MIN_HISTORY = 10  # stories in a company's baseline before it may alert (default 30; see _run)

SUMMARY_SQL = {
    "rows by kind and sentiment": """
        select kind, sentiment, count(*) posts, round(avg(sentiment_score), 3) mean_score
        from enriched group by all order by kind, sentiment""",
    "most negative companies (>= 10 posts)": """
        select t.ticker, count(*) posts, round(avg(sentiment_score), 3) mean_score,
               round(avg(case when sentiment = 'negative' then 1 else 0 end), 2) negative_share
        from enriched, unnest(tickers) as t(ticker) group by 1 having count(*) >= 10
        order by mean_score limit 8""",
    "topics": "select topic, count(*) posts from enriched group by 1 order by 2 desc limit 8",
    "entities": """
        select e.text, e.type, count(*) mentions from enriched, unnest(entities) as u(e)
        group by all order by mentions desc limit 8""",
}


def start_dashboard(lake: Path, port: int) -> subprocess.Popen:
    lake.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "finpulse.pipeline.cli", "dashboard", "--lake", str(lake), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    click.echo(f"[demo] dashboard: http://127.0.0.1:{port}  (watch the rows and the alert arrive)")
    return proc


def run_demo(lake: Path, posts: int, rate: float, port: int | None, dashboard_port: int | None = 8501) -> None:
    from finpulse.pipeline.lake.query import format_table

    dashboard = start_dashboard(lake, dashboard_port) if dashboard_port else None
    try:
        _run(lake, posts, rate, port, format_table)
        if dashboard and sys.stdin.isatty():
            click.echo(f"[demo] the dashboard stays up at http://127.0.0.1:{dashboard_port}; Ctrl-C to stop")
            dashboard.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if dashboard:
            dashboard.terminate()
            dashboard.wait(10)


def _run(lake: Path, posts: int, rate: float, port: int | None, format_table) -> None:
    with EmbeddedBroker(port=port) as broker:
        click.echo(f"[demo] broker up at {broker.bootstrap} (Tansu, in-memory)")
        create_topics(broker.bootstrap, {"news": 3, "social": 3})
        start = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)
        event = Event("BA", start + timedelta(hours=18, minutes=5), posts=80, minutes=40)
        feed = list(generate_posts(posts, seed=42, start=start, span_hours=24, events=(event,)))
        click.echo(f"[demo] the feed holds an injected negative event: {event.posts} posts on {event.ticker} at {event.at:%Y-%m-%d %H:%M} UTC")

        def produce() -> None:
            cfg = {"bootstrap_servers": [broker.bootstrap]}
            news = [p for p in feed if p["kind"] == "news"]
            social = [p for p in feed if p["kind"] == "social"]
            t1 = threading.Thread(target=publish, args=(cfg, "news", post_messages(news), rate / 2))
            t1.start()
            publish(cfg, "social", post_messages(social), rate / 2)
            t1.join()

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        click.echo(f"[demo] producing {len(feed)} posts at {rate:.0f}/s to topics news, social")
        cmd = [sys.executable, "-m", "finpulse.pipeline.cli", "stream", "--bootstrap", broker.bootstrap,
               "--topics", "news,social", "--lake", str(lake), "--idle-exit", "8"]
        click.echo(f"[demo] stream: {' '.join(cmd[2:])}")
        started = time.monotonic()
        stream = subprocess.Popen(cmd)
        first_seen, last_report = None, started
        try:
            while stream.poll() is None:
                time.sleep(0.5)
                n = run_query(lake, "select count(*) n from enriched").to_pylist()[0]["n"]
                if n and first_seen is None:  # the bundle bound makes this seconds, not a backlog's worth
                    first_seen = time.monotonic() - started
                    click.echo(f"[demo] first {n} rows visible {first_seen:.1f}s after the stream started")
                if time.monotonic() - last_report >= 5:
                    last_report = time.monotonic()
                    click.echo(f"[demo] {n} enriched rows in {lake} after {last_report - started:.0f}s")
        except KeyboardInterrupt:
            stream.terminate()
        stream.wait()
        producer.join(timeout=1)
    for title, sql in SUMMARY_SQL.items():
        click.echo(f"\n== {title}\n{format_table(run_query(lake, sql))}")
    # The generator writes a few templates per company, so its posts look like copies of a few
    # stories: BA has 22 distinct ones in the day before the event, under the detector's cold-start
    # floor of 30 (a listed company's real feed has far more), and the demo showed no alert. The
    # demo lowers that floor, and prints the command that does the same.
    detector = dataclasses.replace(DetectorConfig(), min_history_posts=DEMO_MIN_HISTORY)
    run_alerts(str(lake), AlertSettings(bucket="1 hour", key_kinds=("company",), detector=detector))
    header = f"alerts (finpulse alerts --lake {lake} --min-history {DEMO_MIN_HISTORY})"
    click.echo(f"\n== {header}\n" + format_table(run_query(lake, """
        select severity, key, window_start, volume, round(observed_share, 2) observed, round(baseline_share, 2) baseline
        from alerts order by window_start""")))
    click.echo(f"\n[demo] done. Explore with: finpulse query --lake {lake} \"select * from enriched limit 5\"")
