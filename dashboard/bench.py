"""`finpulse bench-dashboard`: a generated lake of N enriched rows, every dashboard query timed.

Rows are synthetic but shaped like the real thing: texts from the post generator, company
tickers and ORG entity spans, sentiment/topic labels and scores, a year of timestamps, written
as many Parquet files in date partitions, plus alerts. Model inference is skipped on purpose:
this measures the dashboard, not the encoder.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from finpulse.dashboard import queries
from finpulse.dashboard.filters import Filters, preset_range
from finpulse.dashboard.store import LakeStore
from finpulse.pipeline.devtools.generator import COMPANIES, generate_posts
from finpulse.pipeline.lake import tables

TOPICS = ["Company | Product News", "Stock Commentary", "Earnings", "Analyst Update", "M&A | Investments",
          "Macro", "Legal | Regulation", "Markets", "Energy | Oil", "Dividend"]


def _templates(n: int, seed: int) -> list[tuple[str, str, list[str], list[dict]]]:
    """(kind, text, tickers, entities) for n distinct generated posts."""
    out = []
    for p in generate_posts(n, seed=seed):
        tickers, entities = [], []
        for ticker, name, _ in COMPANIES:
            at = p["text"].find(name)
            if at >= 0:
                tickers.append(ticker)
                entities.append({"text": name, "type": "ORG", "start": at, "end": at + len(name), "score": 0.97})
        out.append((p["kind"], p["text"], tickers, entities))
    return out


def generate_lake(lake: Path, rows: int, files: int = 400, days: int = 365, seed: int = 11) -> None:
    """Write `rows` enriched rows over `days` into `files` Parquet files, and a few alerts."""
    rng = np.random.default_rng(seed)
    templates = _templates(20_000, seed)
    end = datetime(2026, 11, 1, tzinfo=timezone.utc)
    start = end - timedelta(days=days)
    per_file = -(-rows // files)
    sources = {"news": ["reuters", "bloomberg", "wsj", "ft", "cnbc"], "social": ["twitter", "stocktwits", "reddit"]}
    for f in range(files):
        n = min(per_file, rows - f * per_file)
        if n <= 0:
            break
        # Files cover consecutive slices of time, as a stream's commits do.
        t0 = start + (end - start) * f / files
        offsets = np.sort(rng.uniform(0, (end - start).total_seconds() / files, n))
        picks = rng.integers(0, len(templates), n)
        sentiment = rng.choice(["negative", "neutral", "positive"], n, p=[0.3, 0.4, 0.3])
        score = np.where(sentiment == "negative", -rng.uniform(0.4, 1, n),
                         np.where(sentiment == "positive", rng.uniform(0.4, 1, n), rng.uniform(-0.3, 0.3, n)))
        records = []
        for i in range(n):
            kind, text, tickers, entities = templates[picks[i]]
            s = str(sentiment[i])
            published = t0 + timedelta(seconds=float(offsets[i]))
            records.append({
                "id": f"b-{f}-{i}", "kind": kind, "source": sources[kind][i % len(sources[kind])],
                "published_at": published, "ingested_at": published + timedelta(seconds=2),
                "title": None, "text": text, "url": None, "author": None, "lang": "en", "tickers": tickers,
                "sentiment": s, "sentiment_score": float(score[i]),
                "sentiment_probs": {"negative": 0.8 if s == "negative" else 0.1, "neutral": 0.8 if s == "neutral" else 0.1,
                                    "positive": 0.8 if s == "positive" else 0.1},
                "topic": TOPICS[int(picks[i]) % len(TOPICS)], "topic_score": 0.9, "entities": entities,
                "model_version": "synthetic", "kafka_topic": "news", "kafka_partition": 0, "kafka_offset": f * per_file + i})
        tables.append(lake, "enriched", tables.rows_table("enriched", records, [f"{t0:%Y-%m-%d}"] * len(records)))
    alerts = []
    for k in range(60):
        ws = start + timedelta(days=days * k / 60)
        ticker = COMPANIES[k % len(COMPANIES)][0]
        alerts.append({"alert_id": f"a-bench-{k}", "key_kind": "ticker", "key": ticker, "bucket_width": "1 hour",
                       "window_start": ws, "window_end": ws + timedelta(hours=1), "volume": 40, "negatives": 30,
                       "observed_share": 0.75, "baseline_share": 0.3, "ratio": 2.5, "delta": 0.45, "z": 6.0,
                       "p_value": 1e-7, "severity": ["medium", "high", "critical"][k % 3], "example_ids": [],
                       "created_at": ws + timedelta(hours=1)})
    tables.append(lake, "alerts", tables.rows_table("alerts", alerts, [f"{a['created_at']:%Y-%m-%d}" for a in alerts]))


def time_queries(store: LakeStore, f: Filters, repeat: int = 3) -> dict[str, float]:
    """Median uncached milliseconds per dashboard query for one selection."""
    newest = store.status().newest
    if newest is None:
        raise ValueError("the lake has no posts: there is nothing to time the dashboard's queries on")
    calls = {
        "status": lambda: store.status(),
        "options": lambda: queries.options(store),
        "overview": lambda: queries.overview(store, f),
        "top_companies": lambda: queries.top_companies(store, f),
        "trend": lambda: queries.trend(store, f),
        "mean_by_bucket": lambda: queries.mean_by_bucket(store, f),
        "alerts": lambda: queries.alerts(store, f),
        "alert_posts": lambda: queries.alert_posts(store, "ticker", "AAPL", newest - timedelta(days=30), newest),
        "movers": lambda: queries.movers(store, f),
        "topics": lambda: queries.topics(store, f),
        "count_posts": lambda: queries.count_posts(store, f),
        "posts_page": lambda: queries.posts(store, f),
    }
    out = {}
    for name, call in calls.items():
        times = []
        for _ in range(repeat):
            store.clear_cache()  # measure the query, not the cache
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1000)
        out[name] = round(statistics.median(times), 1)
    return out


def run(lake: Path, rows: int, browser: bool = True) -> dict:
    result: dict = {"rows": rows}
    if tables.open_table(lake, "enriched") is None:
        t = time.perf_counter()
        generate_lake(lake, rows)
        result["generate_s"] = round(time.perf_counter() - t, 1)
    files = [Path(f) for f in tables.snapshot(lake, "enriched").files]
    result["files"] = len(files)
    result["lake_mb"] = round(sum(p.stat().st_size for p in files) / 1e6, 1)
    store = LakeStore(lake)
    t = time.perf_counter()
    store.refresh(force=True)
    result["store_load_s"] = round(time.perf_counter() - t, 2)
    status = store.status()
    result["posts"] = status.posts
    oldest, newest = status.oldest, status.newest
    if oldest is None or newest is None:
        raise ValueError(f"{lake}: the enriched table has no posts to time the dashboard's queries on")
    selections = {
        "last_7_days": Filters(*preset_range("Last 7 days", oldest, newest)),
        "all_1_year": Filters(*preset_range("All", oldest, newest)),
        "all_ticker_AAPL": Filters(*preset_range("All", oldest, newest), tickers=("AAPL",)),
        "all_text_search": Filters(*preset_range("All", oldest, newest), text="guidance"),
    }
    result["query_ms"] = {name: time_queries(store, f) for name, f in selections.items()}
    result["slowest_query_ms"] = max(v for q in result["query_ms"].values() for v in q.values())
    if browser:
        result["first_paint_s"] = first_paint(lake)
    return result


def first_paint(lake: Path) -> dict[str, float]:
    """Seconds from navigation to a rendered chart: the first visitor after start-up (loads the
    lake into memory) and a later visitor (the store is already warm)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from finpulse.dashboard.browser import chromium, dashboard_server

    out = {}
    with dashboard_server(lake, Path("/tmp/finpulse-dashboard-bench.log")) as (url, _pid), chromium() as driver:
        for visit in ("cold", "warm", "warm_again"):
            t = time.perf_counter()
            driver.get(url)
            WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".vega-embed canvas, .vega-embed svg"))
            out[visit] = round(time.perf_counter() - t, 2)
            driver.get("about:blank")
    return out
