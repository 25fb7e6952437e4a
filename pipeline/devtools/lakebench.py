"""Read and commit costs of the Delta lake at stream scale (the figures in docs/SCALING.md).

A stream at `rate` posts/s with the default 1 s flush commits one small file per second per
table and date; the background optimizer folds them every `optimize_every` seconds. Rather than
run for a day, this synthesises the same tables directly: rows with the real schema, committed
at the cadence the stream would have (`--hours` of data), then times what readers do first
(`finpulse query`, `finpulse alerts`' evaluation, the dashboard's first load) on:

- `steady`: the table as the stream leaves it with background compaction (one file per
  compaction interval, plus the small files of the last interval);
- `compacted`: after `finpulse lake optimize`;
- `uncompacted`: compaction off, one file per flush (for `--small-hours` of data: a day of them
  is too slow to build here), and the same files in today's plain-Parquet layout.

Also: commit latency per bundle (`--commits` real commits of rate x flush rows) and files/hour.
"""

from __future__ import annotations

import shutil
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from finpulse.pipeline.lake import tables

T0 = datetime(2026, 11, 2, tzinfo=timezone.utc)
TICKERS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "GOOG", "META", "JPM", "BA", "KO"]
SENTIMENTS = np.array(["negative", "neutral", "positive"])


def synth(n: int, start: datetime, seconds: float, seed: int) -> pa.Table:
    """n enriched rows spread over `seconds` from `start`, with the lake's schema (+ date)."""
    rng = np.random.default_rng(seed)
    offs = np.sort(rng.uniform(0, seconds, n))
    published = [start + timedelta(seconds=float(s)) for s in offs]
    sent = SENTIMENTS[rng.choice(3, n, p=[0.25, 0.5, 0.25])]
    score = np.where(sent == "negative", -0.7, np.where(sent == "positive", 0.6, 0.0))
    ticks = rng.integers(0, len(TICKERS), n)
    cols = {
        "id": [f"s{seed}-{i}" for i in range(n)],
        "kind": ["social"] * n,
        "source": ["stocktwits"] * n,
        "published_at": published,
        "ingested_at": [p + timedelta(seconds=1) for p in published],
        "title": [None] * n,
        "text": [f"${TICKERS[t]} post number {i} with some words about the stock" for i, t in enumerate(ticks)],
        "url": [None] * n,
        "author": [None] * n,
        "lang": ["en"] * n,
        "tickers": [[TICKERS[t]] for t in ticks],
        "sentiment": sent.tolist(),
        "sentiment_score": score.tolist(),
        "sentiment_probs": [{"negative": 0.1, "neutral": 0.8, "positive": 0.1}] * n,
        "topic": ["Markets"] * n,
        "topic_score": [0.9] * n,
        "entities": [[]] * n,
        "model_version": ["synthetic"] * n,
        "kafka_topic": ["social"] * n,
        "kafka_partition": [0] * n,
        "kafka_offset": list(range(n)),
        "companies": [[TICKERS[t]] for t in ticks],
    }
    schema = tables.SCHEMAS["enriched"]
    for field in schema:  # columns added since (story ids, per-company sentiment): empty
        if field.name not in cols:
            cols[field.name] = pa.nulls(n, field.type) if field.nullable else [[]] * n
    table = pa.Table.from_pydict(cols, schema=schema)
    return table.append_column(tables.PARTITION, pa.array([f"{p:%Y-%m-%d}" for p in published], pa.string()))


def timed(fn, repeat: int = 1) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return round(statistics.median(runs), 2)


def reader_times(lake: str | Path) -> dict:
    """Seconds for a query, the alerts evaluation and the dashboard's first load."""
    from finpulse.dashboard.store import LakeStore
    from finpulse.pipeline.alerts.evaluate import evaluate
    from finpulse.pipeline.lake.query import run_query
    from finpulse.pipeline.runtime.settings import AlertSettings

    out: dict[str, float | int | None] = {"files": len(tables.snapshot(lake, "enriched").files)}
    out["query_s"] = timed(lambda: run_query(lake, "select sentiment, count(*) from enriched group by 1"))
    out["alerts_eval_s"] = timed(lambda: evaluate(lake, AlertSettings()))
    out["dashboard_first_load_s"] = timed(lambda: LakeStore(lake, min_refresh_s=0).refresh(force=True))
    return out


def legacy_times(folder: Path) -> dict:
    """The same reads on today's layout: plain Parquet files under enriched/date=.../."""
    import duckdb

    files = sorted(str(p) for p in (folder / "enriched").rglob("*.parquet"))
    con = duckdb.connect()
    return {
        "files": len(files),
        "query_s": timed(
            lambda: con.execute(
                "select sentiment, count(*) from read_parquet(?, union_by_name=true) group by 1", [files]
            ).fetchall()
        ),
    }


def run(
    workdir: Path,
    hours: float = 24.0,
    rate: float = 30.0,
    flush_s: float = 1.0,
    optimize_every: float = 600.0,
    small_hours: float = 1.0,
    commits: int = 300,
) -> dict:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    result: dict = {"hours": hours, "rate_posts_per_s": rate, "flush_s": flush_s, "optimize_every_s": optimize_every}
    # 1. commit latency per bundle at the default flush (rate x flush rows per commit), with the
    #    background optimizer's effect (compaction every optimize_every commits)
    lake = workdir / "latency"
    per = max(1, int(rate * flush_s))
    lat, t = [], T0
    for i in range(int(commits)):
        data = synth(per, t, flush_s, seed=i)
        t0 = time.perf_counter()
        tables.append(lake, "enriched", data, {"kafka.social.0": (i + 1) * per})
        lat.append(time.perf_counter() - t0)
        t += timedelta(seconds=flush_s)
        if (i + 1) % int(optimize_every / flush_s) == 0:
            tables.optimize(lake, retention_hours=1)
    lat.sort()
    result["commit_ms"] = {
        "p50": round(lat[len(lat) // 2] * 1000, 1),
        "p99": round(lat[int(len(lat) * 0.99)] * 1000, 1),
        "max": round(lat[-1] * 1000, 1),
        "commits": commits,
        "rows_per_commit": per,
    }
    result["files_per_hour_default_flush"] = round(3600 / flush_s)  # one file per commit per table and date
    # 2. a day of data as the stream with background compaction leaves it
    lake = workdir / "steady"
    interval = optimize_every
    n_intervals = int(hours * 3600 / interval)
    build = time.perf_counter()
    for k in range(n_intervals - 1):  # compacted intervals: one file each
        tables.append(
            lake,
            "enriched",
            synth(int(rate * interval), T0 + timedelta(seconds=k * interval), interval, seed=10_000 + k),
        )
    last = T0 + timedelta(seconds=(n_intervals - 1) * interval)
    for j in range(int(interval / flush_s)):  # the last interval: not compacted yet
        tables.append(lake, "enriched", synth(per, last + timedelta(seconds=j * flush_s), flush_s, seed=20_000 + j))
    result["steady_build_s"] = round(time.perf_counter() - build, 1)
    result["rows"] = int(rate * hours * 3600)
    result["steady"] = reader_times(lake)
    result["optimize"] = tables.optimize(lake, retention_hours=1)["enriched"]
    result["compacted"] = reader_times(lake)
    # 3. compaction off: one file per flush, for small_hours of data; and today's layout
    lake = workdir / "uncompacted"
    legacy = workdir / "legacy"
    n_small = int(small_hours * 3600 / flush_s)
    batch = 600  # files per write call, one per flush (target_file_size would merge them)
    for b in range(0, n_small, batch):
        chunk = [
            synth(per, T0 + timedelta(seconds=(b + j) * flush_s), flush_s, seed=30_000 + b + j)
            for j in range(min(batch, n_small - b))
        ]
        for j, data in enumerate(chunk):
            tables.append(lake, "enriched", data)
            folder = legacy / "enriched" / f"date={data.column('date')[0]}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(data.drop_columns(["date"]), folder / f"kafka.social.0-{b + j:012d}.parquet")
    result["uncompacted_hours"] = small_hours
    result["uncompacted"] = reader_times(lake)
    result["legacy_layout"] = legacy_times(legacy)
    result["uncompacted_optimize"] = tables.optimize(lake, retention_hours=1)["enriched"]
    result["uncompacted_after_optimize"] = reader_times(lake)
    return result


# -- archives: years of rows at once, day partitions against the current layout -------------------
ARCHIVE_T0 = datetime(2014, 1, 1, tzinfo=timezone.utc)
ARCHIVE_QUERIES = {
    # one company's daily series (the dashboard's company view)
    "company_daily_series_s": "select * from sentiment_series('1 day', 'company') where key = 'AAPL'",
    # every company's daily series (alerts' evaluation and the dashboard's overview)
    "universe_daily_series_s": "select count(*) from sentiment_series('1 day', 'company')",
    # one month of posts (a time filter on the rows: what row-group statistics can skip)
    "one_month_posts_s": "select count(*), avg(sentiment_score) from enriched "
                         "where published_at >= '2016-06-01' and published_at < '2016-07-01'",
}


def cpu() -> dict:
    """The machine's CPU: model, cores, and the vector/matrix features that matter to DuckDB and torch."""
    import os

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    return {"model": model, "cores": os.cpu_count(),
            "features": {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")}}


def archive_chunks(years: float, rows_per_day: float, chunk: int):
    """The rows of a `years`-long archive in time order, `chunk` rows at a time (one backfill commit each)."""
    total = int(years * 365 * rows_per_day)
    seconds_per_row = 86400 / rows_per_day
    for k, start in enumerate(range(0, total, chunk)):
        n = min(chunk, total - start)
        yield synth(n, ARCHIVE_T0 + timedelta(seconds=start * seconds_per_row), n * seconds_per_row, seed=50_000 + k)


def query_times(lake: Path, repeat: int = 3) -> dict:
    from finpulse.pipeline.lake.query import run_query

    out: dict = {"files": len(tables.snapshot(lake, "enriched").files)}
    for name, sql in ARCHIVE_QUERIES.items():
        run_query(lake, sql)  # warm the OS cache: every layout is measured warm
        out[name] = timed(lambda sql=sql: run_query(lake, sql), repeat)
    return out


def stream_files(workdir: Path, minutes: float, rate: float, flush_s: float, optimize_every: float) -> dict:
    """Live files of a stream committing every `flush_s` with the background compaction every
    `optimize_every` seconds (run inline at the same cadence), in the current layout."""
    lake = workdir / "stream"
    per = max(1, int(rate * flush_s))
    live, t = [], T0
    for i in range(int(minutes * 60 / flush_s)):
        tables.append(lake, "enriched", synth(per, t, flush_s, seed=70_000 + i), {"kafka.social.0": (i + 1) * per})
        t += timedelta(seconds=flush_s)
        if (i + 1) % int(optimize_every / flush_s) == 0:
            tables.optimize(lake, retention_hours=1)
            live.append(len(tables.snapshot(lake, "enriched").files))
    files_per_hour_added = (live[-1] - live[0]) * 3600 / ((len(live) - 1) * optimize_every) if len(live) > 1 else None
    return {"minutes": minutes, "commits": int(minutes * 60 / flush_s), "rows_per_commit": per,
            "live_files_after_each_compaction": live,
            "live_files_at_end": len(tables.snapshot(lake, "enriched").files),
            "files_per_hour_after_compaction": files_per_hour_added,
            "files_per_hour_without_compaction": round(3600 / flush_s)}


def run_archive(workdir: Path, years: float = 5.0, rows_per_day: float = 133.0, chunk: int = 2000,
                stream_minutes: float = 30.0, rate: float = 30.0, flush_s: float = 1.0,
                optimize_every: float = 600.0) -> dict:
    """A backfill-like write of a `years`-long archive (rows written straight through the lake's
    commit path, no models), into day partitions as the older layout did and into the current
    layout; files per table and query times for each, the relayout of the day-partitioned lake,
    and a stream's files per hour with its background compaction."""
    from deltalake import write_deltalake

    from finpulse.pipeline.lake.maintenance import compact_written
    from finpulse.pipeline.lake.relayout import relayout

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    result: dict = {"cpu": cpu(), "years": years, "rows_per_day": rows_per_day, "chunk_rows": chunk,
                    "written_through": "lake commit path (tables.append), generated rows, no models"}
    day, new = workdir / "day_partitions", workdir / "current"
    rows = 0
    t0 = time.perf_counter()
    for k, data in enumerate(archive_chunks(years, rows_per_day, chunk)):
        rows += data.num_rows
        # the older layout: what tables.append wrote before (a partition per day)
        write_deltalake(tables.table_uri(day, "enriched"), data, mode="append", partition_by=[tables.PARTITION],
                        writer_properties=tables.writer_properties())
        tables.append(new, "enriched", data, {f"file.bench{k // 50}": k + 1})
    result["rows"] = rows
    result["write_s"] = round(time.perf_counter() - t0, 1)
    result["day_partitions"] = {"files_after_write": len(tables.snapshot(day, "enriched").files),
                                "optimize": tables.optimize(day, retention_hours=0)["enriched"]}
    result["day_partitions"].update(query_times(day))
    result["current"] = {"files_after_write": len(tables.snapshot(new, "enriched").files),
                         "compact_written": compact_written(new, ("enriched",))["enriched"]}
    result["current"].update(query_times(new))
    clustered = tables.optimize(new, retention_hours=0, cluster=True)["enriched"]
    result["current_clustered"] = {"optimize_cluster": clustered}
    result["current_clustered"].update(query_times(new))
    migrated = relayout(day)
    result["relayout_of_day_partitions"] = migrated["enriched"]
    result["relayout_of_day_partitions"].update(query_times(day))
    result["stream"] = stream_files(workdir, stream_minutes, rate, flush_s, optimize_every)
    return result
