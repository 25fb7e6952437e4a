"""Reliability harnesses: real processes, real SIGKILLs, a real broker, exact counts.

Used by the fast fault tests (tests/pipeline/jobs/test_faults.py) and, with bigger numbers, by the long runs:

    python -m finpulse.pipeline.devtools.chaos kill --kills 20          # SIGKILL the stream at 20 moments
    python -m finpulse.pipeline.devtools.chaos outage --seconds 60      # broker down for a minute
    python -m finpulse.pipeline.devtools.chaos load --minutes 10        # produce faster than we enrich
    python -m finpulse.pipeline.devtools.chaos soak --minutes 60        # steady feed; RSS/fds/throughput a minute

Each prints one JSON summary (lost, duplicated, peak RSS, drain time, ...) and writes the
per-sample series to WORKDIR/samples.jsonl. `inject` runs any finpulse command with a kill
point installed, so a crash lands exactly mid-write, after the commit point, or between the
lake commit and the Kafka offset commit.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FINPULSE = [sys.executable, "-m", "finpulse.pipeline.cli"]
INJECT = [sys.executable, "-m", "finpulse.pipeline.cli", "chaos", "inject"]
KILL_POINTS = ("mid-write", "staged", "committed", "offset")  # in `finpulse stream`
ALERT_KILL_POINTS = ("alert-write", "alert-deliver")  # in `finpulse alerts`
ALL_KILL_POINTS = KILL_POINTS + ALERT_KILL_POINTS  # what `chaos inject --at` accepts: the harnesses and it share this


# -- kill points ------------------------------------------------------------------------------
def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill_point(point: str, after: int) -> None:
    """Patch this process so it SIGKILLs itself at `point` on the `after`-th occurrence.

    mid-write: half of a data file is in the table folder, its log entry not written; staged: the
    bundle's rows are ready, no Delta commit made; committed: the enriched commit (rows and
    positions) landed, nothing after it ran; offset: lake commit done, Kafka group offset not yet
    committed.
    """
    from finpulse.pipeline.jobs import stream as stream_mod
    from finpulse.pipeline.lake import commit as lake_mod

    calls = itertools.count(1)

    def due() -> bool:
        return next(calls) == after

    if point == "mid-write":  # half of a data file in the table folder, no log entry
        import deltalake

        original_write = deltalake.write_deltalake

        def write_deltalake(table_or_uri, data, **kwargs):
            if due():
                import io

                import pyarrow.parquet as pq

                buf = io.BytesIO()
                day = [c for c in data.column_names if c == "date"]  # only tables of the older day layout
                pq.write_table(data.drop_columns(day), buf, compression="zstd")
                uri = getattr(table_or_uri, "table_uri", table_or_uri)  # a loaded DeltaTable or a path
                folder = Path(str(uri).removeprefix("file://"))
                folder = folder / f"date={data.column('date')[0]}" if day else folder
                path = folder / "part-00000-torn.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                _die()
            return original_write(table_or_uri, data, **kwargs)

        deltalake.write_deltalake = write_deltalake
    elif point in ("staged", "committed"):
        original_append = lake_mod.Lake._append

        def append(self, table, rows, txns):
            if point == "staged" and due():  # rows ready, no Delta commit made yet
                _die()
            original_append(self, table, rows, txns)
            if point == "committed" and table == "enriched" and due():  # the commit landed; nothing after it ran
                _die()

        lake_mod.Lake._append = append  # type: ignore[method-assign,assignment]  # the fault injection: a deliberate patch
    elif point == "offset":
        original_call = stream_mod.GroupOffsetCommitter.__call__

        def call(self, source, end):
            if due():
                _die()
            return original_call(self, source, end)

        stream_mod.GroupOffsetCommitter.__call__ = call  # type: ignore[method-assign]  # a deliberate patch
    elif point == "alert-write":  # the new alerts are evaluated, their Delta commit not yet made
        from finpulse.pipeline.alerts import evaluate as alerts_mod

        original_commit = alerts_mod._commit_alerts

        def commit_alerts(lake, new):
            if due():
                _die()
            return original_commit(lake, new)

        alerts_mod._commit_alerts = commit_alerts
    elif point == "alert-deliver":  # alerts recorded in the lake, not yet delivered
        from finpulse.pipeline.alerts import evaluate as alerts_mod

        original_deliver = alerts_mod.deliver

        def deliver(*args, **kwargs):
            if due():
                _die()
            return original_deliver(*args, **kwargs)

        alerts_mod.deliver = deliver
    else:
        raise ValueError(f"unknown kill point {point!r}; use one of {', '.join(ALL_KILL_POINTS)}")


# -- feed -------------------------------------------------------------------------------------
def feed(prefix: str, limit: int | None = None, seconds: float | None = None, seed: int = 11,
         pool: int = 2000, pad_bytes: int = 0) -> Iterator[bytes]:
    """Generated posts with ids prefix-0, prefix-1, ... until `limit` posts or `seconds` pass.

    Texts cycle through a pool of generated posts (ids stay unique); `pad_bytes` adds that many
    incompressible bytes to the url (stored, never tokenised), for tests that need volume on disk.
    """
    from finpulse.pipeline.devtools.generator import generate_posts

    posts = list(generate_posts(pool, seed=seed))
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds if seconds else None
    for i in itertools.count():
        if (limit is not None and i >= limit) or (deadline is not None and time.monotonic() >= deadline):
            return
        post = dict(posts[i % pool], id=f"{prefix}-{i}")
        if pad_bytes:
            post["url"] = "https://example.com/" + rng.randbytes(pad_bytes // 2).hex()
        yield json.dumps(post).encode()


class Producer(threading.Thread):
    """Publishes a feed round-robin over a topic's partitions in the background; counts what it sent."""

    def __init__(self, bootstrap: str, topic: str, messages: Iterator[bytes], rate: float | None, partitions: int = 3) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.rate, self.partitions = bootstrap, topic, rate, partitions
        self.offered = 0  # handed to the client so far (live lag is measured against this)
        self.sent: int | None = None  # final count once flushed
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self._messages = messages

    def _counted(self) -> Iterator[bytes]:
        for m in self._messages:
            self.offered += 1
            yield m

    def run(self) -> None:
        from finpulse.infra.broker import create_topics
        from finpulse.pipeline.devtools.produce import publish

        try:
            create_topics(self.bootstrap, {self.topic: self.partitions})
            self.sent = publish({"bootstrap_servers": [self.bootstrap]}, self.topic, self._counted(), self.rate,
                                partition_of=lambda i: i % self.partitions)
        except BaseException as exc:  # noqa: BLE001 - reported by the harness
            self.error = exc
        finally:
            self.finished_at = time.monotonic()


# -- the stream as a process ------------------------------------------------------------------
def stream_command(bootstrap: str, topics: list[str], lake: Path, *extra: str, kill_at: tuple[str, int] | None = None) -> list[str]:
    args = ["stream", "--bootstrap", bootstrap, "--topics", ",".join(topics), "--lake", str(lake), "-v", *extra]
    if kill_at:
        return INJECT + ["--at", kill_at[0], "--after", str(kill_at[1]), "--", *args]
    return FINPULSE + args


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def lake_position_total(lake: Path, topic: str, partitions: int = 3) -> int:
    """Messages of `topic` the lake has consumed (enriched + dead letters), from the table log's
    transactions alone (cheap: no data file is read)."""
    from finpulse.pipeline.lake.commit import Lake, source_key
    from finpulse.pipeline.messages import OFFSET_MASK

    try:
        ends = Lake(lake).all_committed(source_key(topic, p) for p in range(partitions))
        return sum(end & OFFSET_MASK for end in ends.values())
    except Exception:  # noqa: BLE001 - a log entry written under us: read again next time
        return -1


# -- checks -----------------------------------------------------------------------------------
def exactly_once(lake: Path, prefix: str, expected: int) -> dict:
    """Every id prefix-0 .. prefix-(expected-1) once: lost, duplicated and unexpected rows."""
    from finpulse.pipeline.lake.query import run_query

    r = run_query(lake, """
        with ours as (select id, try_cast(split_part(id, '-', -1) as bigint) i from enriched where starts_with(id, ?))
        select count(*) as rows, count(distinct id) as ids,
               count(distinct id) filter (where i >= 0 and i < ?) as expected_ids
        from ours""", [prefix + "-", expected]).to_pylist()[0]
    dead = run_query(lake, "select count(*) n from deadletter").to_pylist()[0]["n"]
    return {"expected": expected, "rows": r["rows"], "lost": expected - r["expected_ids"],
            "duplicated": r["rows"] - r["ids"], "unexpected": r["ids"] - r["expected_ids"], "dead_letters": dead}


def group_matches_lake(bootstrap: str, group: str, lake: Path, topic: str, partitions: int) -> bool:
    """Kafka group offsets equal the lake's progress (they are committed after it, for lag tools)."""
    from kafka import KafkaConsumer, TopicPartition

    from finpulse.pipeline.lake.commit import Lake, source_key
    from finpulse.pipeline.messages import OFFSET_MASK

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             allow_auto_create_topics=False)
    try:
        return all(consumer.committed(TopicPartition(topic, p)) == Lake(lake).committed(source_key(topic, p)) & OFFSET_MASK
                   for p in range(partitions))
    finally:
        consumer.close()


# -- sampling ---------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float  # seconds since the run started
    rss_mb: float
    open_files: int
    threads: int
    produced: int
    in_lake: int

    @property
    def lag(self) -> int:
        return self.produced - self.in_lake


@dataclass
class Sampler:
    """Samples a process tree's RSS, open file descriptors and threads, and the lake's progress."""

    pid: int
    lake: Path
    topic: str
    produced: Callable[[], int]
    every: float
    out: Path
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def take(self) -> Sample | None:
        import psutil

        try:
            procs = [psutil.Process(self.pid)]
            procs += procs[0].children(recursive=True)
            rss = sum(p.memory_info().rss for p in procs) / 2**20
            fds = sum(p.num_fds() for p in procs)
            threads = sum(p.num_threads() for p in procs)
        except psutil.Error:
            return None
        s = Sample(round(time.monotonic() - self._t0, 1), round(rss, 1), fds, threads, self.produced(),
                   lake_position_total(self.lake, self.topic))
        self.samples.append(s)
        with open(self.out, "a") as fh:
            fh.write(json.dumps({**asdict(s), "lag": s.lag}) + "\n")
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.take()


def memory_summary(samples: list[Sample]) -> dict:
    """Peak RSS and the trend: median RSS of the second quarter vs the last quarter of the run."""
    rss = [s.rss_mb for s in samples if s.rss_mb > 0]
    if len(rss) < 4:
        return {"peak_rss_mb": max(rss, default=0.0)}
    q = len(rss) // 4

    def median(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    early, late = median(rss[q:2 * q]), median(rss[3 * q:])
    fds = [s.open_files for s in samples]
    return {"peak_rss_mb": round(max(rss)), "rss_q2_median_mb": round(early), "rss_q4_median_mb": round(late),
            "rss_growth_q2_to_q4_pct": round(100 * (late - early) / early, 1),
            "open_files_min": min(fds), "open_files_max": max(fds), "samples": len(samples)}


# -- scenarios --------------------------------------------------------------------------------
def kill_run(bootstrap: str, workdir: Path, kills: int, n: int, rate: float, seed: int = 1,
             inject: tuple[str, ...] = KILL_POINTS, max_delay: float = 4.0, topic: str = "chaos-kill") -> dict:
    """Produce n posts at `rate` while the stream is SIGKILLed: first once at each kill point in
    `inject` (self-inflicted, exactly there), then `kills` times at a random moment up to
    `max_delay` s after the run's first commit (so mid-bundle, mid-write or mid-commit, not
    during model loading). A final run drains the topic; every id must be in the lake once."""
    rng = random.Random(seed)
    lake = workdir / "lake"
    producer = Producer(bootstrap, topic, feed("k", limit=n, seed=seed), rate)
    producer.start()
    wait_for(lambda: producer.offered > 0, 60, "the producer to start")
    log = workdir / "stream.log"
    events: list[dict[str, Any]] = []
    plan: list[str | None] = [*inject] + [None] * kills  # a kill point; None: a random moment
    for point in plan:
        kind = "random" if point is None else "inject"
        before = lake_position_total(lake, topic)
        if point is not None:
            proc = start(stream_command(bootstrap, [topic], lake, "--group", "chaos", kill_at=(point, rng.randint(1, 3))), log)
            try:
                proc.wait(300)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise RuntimeError(f"kill point {point} was never reached; see {log}") from None
            if proc.returncode != -signal.SIGKILL:
                raise RuntimeError(f"kill point {point}: the stream exited with {proc.returncode} instead of dying; see {log}")
        else:
            proc = start(stream_command(bootstrap, [topic], lake, "--group", "chaos"), log)

            def committing(before: int = before, proc: subprocess.Popen = proc) -> bool:  # bound to this run
                return (lake_position_total(lake, topic) > before or proc.poll() is not None
                        or (producer.sent is not None and before >= producer.sent))

            # once this run is committing (not still loading the model), at a random moment; on a
            # timeout there is nothing left to read: kill it idle
            with contextlib.suppress(TimeoutError):
                wait_for(committing, 120, "a first commit")
            time.sleep(rng.uniform(0.0, max_delay))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        events.append({"kill": kind, "point": point, "lake_before": before,
                       "lake_after": lake_position_total(lake, topic)})
        with open(workdir / "events.jsonl", "a") as fh:
            fh.write(json.dumps(events[-1]) + "\n")
    producer.join()
    if producer.error:
        raise RuntimeError(f"producer failed: {producer.error!r}")
    final = start(stream_command(bootstrap, [topic], lake, "--group", "chaos", "--idle-exit", "5"), log)
    if final.wait(900) != 0:
        raise RuntimeError(f"the final stream run failed with {final.returncode}; see {log}")
    result = exactly_once(lake, "k", producer.sent or 0)
    result.update(kills=len(events), injected=list(inject), random_kills=kills,
                  kills_with_progress=sum(e["lake_after"] > e["lake_before"] for e in events),
                  group_offsets_match_lake=group_matches_lake(bootstrap, "chaos", lake, topic, 3), events=events)
    return result


def flow_run(bootstrap: str, workdir: Path, seconds: float, rate: float | None, sample_every: float,
             topic: str, drain_timeout: float = 3600) -> dict:
    """Produce at `rate` for `seconds` into a running stream, sampling it; then wait for the lag
    to drain and check every id is in the lake once. Load: rate above capacity; soak: below."""
    lake = workdir / "lake"
    proc = start(stream_command(bootstrap, [topic], lake, "--group", "flow"), workdir / "stream.log")
    producer = Producer(bootstrap, topic, feed("f", seconds=seconds, seed=5), rate)
    sampler = Sampler(proc.pid, lake, topic, lambda: producer.offered, sample_every, workdir / "samples.jsonl")
    try:
        sampler.take()
        started = time.monotonic()
        producer.start()
        sampler.start()
        producer.join()
        if producer.error:
            raise RuntimeError(f"producer failed: {producer.error!r}")
        sent = producer.sent
        if sent is None:  # set by run() unless publishing raised, which sets `error`
            raise RuntimeError("the producer finished without a count of what it sent")
        produced_at = producer.finished_at or time.monotonic()
        lag_at_end = sent - max(lake_position_total(lake, topic), 0)
        wait_for(lambda: lake_position_total(lake, topic) >= sent or proc.poll() is not None, drain_timeout,
                 "the lag to drain", 1.0)
        drained_at = time.monotonic()
        sampler.take()
    finally:
        sampler.stop()
        alive = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not alive:
        raise RuntimeError(f"the stream died during the run; see {workdir / 'stream.log'}")
    result = exactly_once(lake, "f", sent)
    samples = sampler.samples
    lags = [s.lag for s in samples]
    result.update(produce_seconds=round(seconds), offered_rate=rate, produced=sent,
                  produced_per_s=round(sent / seconds, 1), max_lag=max(lags, default=0), lag_at_producer_end=lag_at_end,
                  drain_seconds=round(drained_at - produced_at, 1),
                  lake_rows_per_s=round(sent / (drained_at - started), 1), **memory_summary(samples))
    return result


def outage_run(workdir: Path, seconds: float, n: int = 600) -> dict:
    """Broker down for `seconds` mid-stream (Tansu is in-memory: it comes back empty). Rows produced
    before the outage and after it must all be in the lake, once; the stream must never die."""
    from finpulse.infra.broker import EmbeddedBroker

    lake = workdir / "lake"
    broker = EmbeddedBroker(log_file=workdir / "broker.log").start()
    try:
        first = Producer(broker.bootstrap, "outage", feed("o", limit=n // 2, seed=3), None)
        first.run()
        proc = start(stream_command(broker.bootstrap, ["outage"], lake), workdir / "stream.log")
        wait_for(lambda: lake_position_total(lake, "outage") >= n // 2, 600, "the rows produced before the outage")
        broker.stop()
        down_at = time.monotonic()
        time.sleep(seconds)
        survived = proc.poll() is None
        broker.start()
        second = Producer(broker.bootstrap, "outage", itertools.islice(feed("o", limit=n, seed=3), n // 2, None), None)
        second.run()
        wait_for(lambda: run_query_count(lake) >= n or proc.poll() is not None, 600, "the rows produced after the outage")
        recovered_s = time.monotonic() - down_at - seconds
        proc.kill()
        proc.wait()
    finally:
        broker.stop()
    result = exactly_once(lake, "o", n)
    log = (workdir / "stream.log").read_text(errors="replace")
    result.update(outage_seconds=seconds, survived=survived, log_resets=log.count("log was reset"),
                  waiting_lines=log.count("waiting for Kafka"), caught_up_after_restart_s=round(recovered_s, 1))
    return result


def alert_feed(hours: int, tickers: int, spike_hour: int = 30) -> list[list]:
    """Per hour, the enriched rows of `tickers` tickers: 30 posts an hour, 20% negative, and
    70% negative for ticker k in hour spike_hour + 2k (one real spike per ticker)."""
    from datetime import datetime, timedelta, timezone

    from finpulse.pipeline.lake.commit import Row
    from finpulse.schemas.records import EnrichedRecord, SentimentProbs

    t0 = datetime(2026, 11, 2, tzinfo=timezone.utc)
    probs = SentimentProbs(negative=0.8, neutral=0.1, positive=0.1)
    out = []
    for hour in range(hours):
        rows = []
        for k in range(tickers):
            negatives = 21 if hour == spike_hour + 2 * k else 6
            for j in range(30):
                neg = j < negatives
                rec = EnrichedRecord(id=f"T{k}-{hour}-{j}", kind="news", source="chaos", text="t", tickers=[f"T{k}"],
                                     published_at=t0 + timedelta(hours=hour, minutes=2 * j), ingested_at=t0,
                                     sentiment="negative" if neg else "neutral", sentiment_score=-0.8 if neg else 0.0,
                                     sentiment_probs=probs, topic="Markets", topic_score=0.5, entities=[], model_version="v")
                rows.append(Row("enriched", rec.model_dump(), "chaos", hour * 100_000 + k * 100 + j, "2026-11-02"))
        out.append(rows)
    return out


def alerts_kill_run(workdir: Path, kills: int, seed: int = 1, hours: int = 44, tickers: int = 4,
                    inject: tuple[str, ...] = ("alert-write",), bootstrap: str | None = None) -> dict:
    """`finpulse alerts --follow` while the lake grows an hour at a time; SIGKILLed at each kill
    point and at random moments, restarted each time. Every alert of the final lake must be
    recorded exactly once (and, with a broker, published at least once)."""
    from finpulse.pipeline.alerts.evaluate import evaluate
    from finpulse.pipeline.lake.commit import Lake
    from finpulse.pipeline.lake.query import run_query
    from finpulse.pipeline.runtime.settings import AlertSettings

    rng = random.Random(seed)
    lake_dir = workdir / "lake"
    lake = Lake(lake_dir)
    hours_of_rows = alert_feed(hours, tickers)
    log = workdir / "alerts.log"
    follow = ["alerts", "--lake", str(lake_dir), "--follow", "--interval", "0.3"]
    if bootstrap:
        follow += ["--bootstrap", bootstrap, "--kafka-topic", "chaos-alerts"]
    plan: list[str | None] = [*inject] + [None] * kills  # a kill point; None: a random moment
    killed_at: list[str] = []  # kill points that really fired (the child died by SIGKILL there)
    fed = 0

    def feed_hours(k: int) -> None:
        nonlocal fed
        for rows in hours_of_rows[fed:fed + k]:
            lake.commit("chaos", rows[0].position, rows[-1].position + 1, rows)
        fed = min(len(hours_of_rows), fed + k)

    feed_hours(28)  # history before the first spike
    per_run = max(1, -(-(len(hours_of_rows) - fed) // max(1, len(plan))))
    for point in plan:
        cmd = (INJECT + ["--at", point, "--after", "1", "--"] if point is not None else FINPULSE) + follow
        proc = start(cmd, log)
        time.sleep(1.5)  # start-up
        feed_hours(per_run)
        if point is not None:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"kill point {point}: `finpulse alerts` never reached it in 60 s; see {log}") from None
            if proc.returncode != -signal.SIGKILL:  # a usage error or a crash is not the kill we asked for
                raise RuntimeError(f"kill point {point}: `finpulse alerts` exited with {proc.returncode} instead of "
                                   f"dying there; see {log}")
            killed_at.append(point)
        else:
            time.sleep(rng.uniform(0.0, 2.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    feed_hours(len(hours_of_rows))
    final = subprocess.run(FINPULSE + follow[:3] + follow[6:], capture_output=True, timeout=300)
    if final.returncode != 0:
        raise RuntimeError(f"the final alerts run failed: {final.stderr.decode(errors='replace')[-2000:]}")
    expected = {a.alert_id for a in evaluate(lake_dir, AlertSettings())}
    rows = run_query(lake_dir, "select alert_id from alerts").to_pylist()
    recorded = [r["alert_id"] for r in rows]
    result = {"expected_alerts": len(expected), "recorded": len(recorded), "lost": len(expected - set(recorded)),
              "duplicated": len(recorded) - len(set(recorded)), "unexpected": len(set(recorded) - expected),
              "kills": len(plan), "injected": list(inject), "killed_at": killed_at}
    if bootstrap:
        published = consume_all(bootstrap, "chaos-alerts")
        result.update(published_distinct=len(set(published)), published_lost=len(expected - set(published)),
                      published_redelivered=len(published) - len(set(published)))
    return result


def consume_all(bootstrap: str, topic: str) -> list[str]:
    """Keys of every message on a topic (alert ids)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000,
                             allow_auto_create_topics=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        consumer.seek_to_beginning()
        return [m.key.decode() for m in consumer]
    finally:
        consumer.close()


def run_query_count(lake: Path) -> int:
    from finpulse.pipeline.lake.query import run_query

    try:
        return run_query(lake, "select count(*) n from enriched").to_pylist()[0]["n"]
    except Exception:  # noqa: BLE001 - no files yet
        return 0


# -- command line -----------------------------------------------------------------------------
