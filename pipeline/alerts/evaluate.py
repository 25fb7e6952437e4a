"""`finpulse alerts`: evaluate the negative-spike detector over the lake and record alerts.

Series come from the `sentiment_series` macro (ids counted once), so streamed and backfilled
history give the same alerts. Alert ids are deterministic (key kind, key, bucket width, bucket
start), so re-running over the same range never writes an alert twice; new alerts land in the
lake's `alerts` Delta table (local or object store) in one commit per evaluation, then are sent
on (webhook and/or Kafka topic) if asked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.faults import storage_unavailable
from finpulse.pipeline.lake.query import connect
from finpulse.pipeline.lake.storage import is_remote, open_storage
from finpulse.pipeline.alerts.detector import Bucket, DetectorConfig, detect_spikes
from finpulse.schemas.records import AlertRecord
from finpulse.schemas.errors import FinpulseError

log = logging.getLogger(__name__)
KEY_KINDS = ("ticker", "topic", "source", "kind", "all")
_NOT_STORED = {"bucket_start", "window_buckets", "channel"}  # the window is stored as window_start/end


@dataclass
class AlertSettings:
    bucket: str = "1 hour"
    key_kinds: tuple[str, ...] = ("ticker",)
    since: datetime | None = None
    until: datetime | None = None
    detector: DetectorConfig = field(default_factory=DetectorConfig)


def alert_id(key_kind: str, key: str, bucket: str, start: datetime) -> str:
    raw = f"{key_kind}\x1f{key}\x1f{bucket}\x1f{start.isoformat()}"
    return "a-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def _interval(bucket: str) -> timedelta:
    number, unit = bucket.split()
    unit = unit.rstrip("s")
    seconds = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[unit]
    return timedelta(seconds=int(number) * seconds)


def evaluate(lake: str | Path, settings: AlertSettings, now: datetime | None = None) -> list[AlertRecord]:
    """All spikes in the range (not yet deduplicated against the lake)."""
    now = now or datetime.now(timezone.utc)
    width = _interval(settings.bucket)
    detector = seasonal(settings.detector, width)
    con = connect(lake)
    try:
        history_from = settings.since - width * detector.history_buckets if settings.since else None
        alerts: list[AlertRecord] = []
        for kind in settings.key_kinds:
            if kind not in KEY_KINDS:
                raise ValueError(f"unknown key kind {kind!r}; use {', '.join(KEY_KINDS)}")
            where, params = ["true"], [settings.bucket, kind]
            if history_from:
                where.append("bucket >= ?")
                params.append(history_from)
            if settings.until:
                where.append("bucket < ?")
                params.append(settings.until)
            rows = con.execute(f"select bucket, key, volume, negatives from sentiment_series(?, ?) where {' and '.join(where)} order by key, bucket", params).fetchall()
            total = sum(r[2] for r in rows)
            global_share = sum(r[3] for r in rows) / total if total else 0.0
            series: dict[str, list[Bucket]] = defaultdict(list)
            for start, key, volume, negatives in rows:
                series[key].append(Bucket(start, volume, negatives))
            for key, buckets in series.items():
                for spike in detect_spikes(_with_gaps(buckets, width), global_share, detector):
                    if settings.since and spike.bucket_start < settings.since:
                        continue
                    window_start = spike.bucket_start - width * (spike.window_buckets - 1)
                    examples = _examples(con, kind, key, window_start, spike.bucket_start + width)
                    measured = {k: v for k, v in dataclasses.asdict(spike).items() if k not in _NOT_STORED}
                    alerts.append(AlertRecord(
                        **measured, alert_id=alert_id(kind, key, settings.bucket, spike.bucket_start), key_kind=kind,
                        key=key, bucket_width=settings.bucket, window_start=window_start,
                        window_end=spike.bucket_start + width, example_ids=examples, created_at=now))
        return alerts
    finally:
        con.close()


def seasonal(detector: DetectorConfig, width: timedelta) -> DetectorConfig:
    """The detector with its count channel's period set from the bucket width: a day of buckets
    (a week for daily or longer buckets), so day/night (or weekday) volume cancels out."""
    day = timedelta(days=1)
    return dataclasses.replace(detector, season_buckets=max(1, round(day / width)) if width < day else 7)


def _with_gaps(buckets: list[Bucket], width: timedelta) -> list[Bucket]:
    """Insert empty buckets so positions in the series are real time steps (cool-down, baseline)."""
    out: list[Bucket] = []
    for b in buckets:
        while out and b.start - out[-1].start > width:
            out.append(Bucket(out[-1].start + width, 0, 0))
        out.append(b)
    return out


def _examples(con, kind: str, key: str, start: datetime, end: datetime, limit: int = 5) -> list[str]:
    match = {"ticker": "list_contains(tickers, ?)", "topic": "topic = ?", "source": "source = ?", "kind": "kind = ?", "all": "? = 'all'"}[kind]
    rows = con.execute(f"""select distinct on (id) id, sentiment_score from enriched
                           where {match} and published_at >= ? and published_at < ? and sentiment = 'negative'
                           order by id""", [key, start, end]).fetchall()
    return [r[0] for r in sorted(rows, key=lambda r: r[1])[:limit]]


def existing_ids(lake: str | Path) -> set[str]:
    con = connect(lake)
    try:
        return {r[0] for r in con.execute("select alert_id from alerts").fetchall()}
    finally:
        con.close()


class AlertStoreError(FinpulseError, ValueError):
    """The lake cannot take the alerts (read-only, disk full). A ValueError, so the CLI reports it plainly."""


@contextlib.contextmanager
def _writer_lock(lake: str | Path):
    """One alerts writer at a time on a local lake (a second `alerts --follow` waits its turn).
    flock: released by the OS if the holder is killed. On an object store there is no flock; the
    table's merge keyed by alert_id (and Delta's conflict check) keeps an alert from being
    recorded twice."""
    if is_remote(lake):
        yield
        return
    import fcntl

    Path(lake).mkdir(parents=True, exist_ok=True)
    with open(Path(lake) / ".alerts.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _commit_alerts(lake: str | Path, new: list[AlertRecord]) -> None:
    """One Delta commit adding the alerts whose id the table does not hold (a merge: inserts only)."""
    data = tables.rows_table("alerts", [a.model_dump() for a in new], [f"{a.created_at:%Y-%m-%d}" for a in new])
    dt = tables.open_table(lake, "alerts")
    if dt is None:
        tables.append(lake, "alerts", data, metadata={"finpulse.op": "alerts"})
        return
    from deltalake import CommitProperties

    (dt.merge(data, predicate="t.alert_id = s.alert_id", source_alias="s", target_alias="t",
              commit_properties=CommitProperties(max_commit_retries=tables.COMMIT_RETRIES,
                                                 custom_metadata={"finpulse.op": "alerts"}))
       .when_not_matched_insert_all().execute())


def record_new(lake: str | Path, alerts: list[AlertRecord]) -> list[AlertRecord]:
    """Record in the lake's `alerts` table the alerts it does not have yet, in one commit; returns them.

    Under the writer lock, so reading the existing ids and adding the new ones is one step; the
    commit is atomic, so a killed run leaves all of its alerts or none.
    """
    try:
        with _writer_lock(lake):
            seen = existing_ids(lake)
            new = [a for a in alerts if a.alert_id not in seen]
            if not new:
                return []
            _commit_alerts(lake, new)
            return new
    except Exception as exc:  # noqa: BLE001 - delta-rs reports I/O failures as its own errors
        if not isinstance(exc, OSError) and not storage_unavailable(exc):
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        if storage_unavailable(exc) and not isinstance(exc, OSError):
            reason = next((k for k in ("Read-only file system", "No space left on device") if k in str(exc)), reason)
        raise AlertStoreError(f"cannot record alerts in {lake}: {reason}") from None


# -- delivery: an outbox per channel, so a crash between recording and sending loses nothing ----
def _delivered_rel(channel: str) -> str:
    return "_delivery/" + hashlib.sha256(channel.encode()).hexdigest()[:16] + ".ids"


def delivered_ids(lake: str | Path, channel: str) -> set[str] | None:
    """Alert ids already sent on a channel (None: the channel has never been used on this lake)."""
    text = open_storage(lake).read_text(_delivered_rel(channel))
    return None if text is None else set(text.split())


def mark_delivered(lake: str | Path, channel: str, ids: list[str]) -> None:
    """Add ids to the channel's outbox record, replacing it atomically (locally with fsync; one
    PUT on an object store), so the record is never torn."""
    storage = open_storage(lake)
    before = storage.read_text(_delivered_rel(channel)) or ""
    storage.put_atomic(_delivered_rel(channel), (before + "".join(f"{i}\n" for i in ids)).encode())


def pending(lake: str | Path, channel: str) -> list[AlertRecord]:
    """Recorded alerts not yet delivered on the channel, oldest first."""
    done = delivered_ids(lake, channel) or set()
    con = connect(lake)
    try:
        rows = con.sql("select * from alerts order by created_at, alert_id").to_arrow_table().to_pylist()
    finally:
        con.close()
    return [AlertRecord(**r) for r in rows if r["alert_id"] not in done]


def deliver(lake: str | Path, webhook: str | None, kafka_config: dict | None, kafka_topic: str | None) -> int:
    """Send every recorded alert a channel has not had yet; at least once (a crash after sending
    and before marking resends it; receivers deduplicate by alert_id, the Kafka message key)."""
    sent = 0
    if webhook:
        channel = f"webhook:{webhook}"
        for a in pending(lake, channel):
            if not post_webhook(webhook, a):
                log.error("could not deliver alert %s to %s; it is recorded in the lake and retried next time", a.alert_id, webhook)
                break  # keep the order; try again on the next evaluation
            mark_delivered(lake, channel, [a.alert_id])
            sent += 1
    if kafka_config and kafka_topic:
        channel = f"kafka:{','.join(kafka_config.get('bootstrap_servers', []))}/{kafka_topic}"
        todo = pending(lake, channel)
        if todo:
            publish_kafka(kafka_config, kafka_topic, todo)
            mark_delivered(lake, channel, [a.alert_id for a in todo])
            sent += len(todo)
    return sent


def _open_channels(lake: str | Path, webhook: str | None, kafka_config: dict | None, kafka_topic: str | None) -> None:
    """A channel used for the first time starts after the alerts already recorded (no replay of history)."""
    channels = ([f"webhook:{webhook}"] if webhook else []) + \
        ([f"kafka:{','.join(kafka_config.get('bootstrap_servers', []))}/{kafka_topic}"] if kafka_config and kafka_topic else [])
    for channel in channels:
        if delivered_ids(lake, channel) is None:
            mark_delivered(lake, channel, sorted(existing_ids(lake)))


def post_webhook(url: str, alert: AlertRecord, retries: int = 3, timeout: float = 5.0, backoff: float = 0.5) -> bool:
    """POST the alert as JSON; retries with exponential backoff; False if every try failed."""
    body = alert.model_dump_json().encode()
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                if 200 <= resp.status < 300:
                    return True
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            log.warning("webhook %s failed (attempt %d/%d): %s", url, attempt + 1, retries + 1, exc)
        time.sleep(backoff * 2**attempt)
    return False


def publish_kafka(client_config: dict, topic: str, alerts: list[AlertRecord]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**client_config, acks="all", retries=5)
    try:
        for a in alerts:
            producer.send(topic, a.model_dump_json().encode(), key=a.alert_id.encode())
        producer.flush(timeout=30)
    finally:
        producer.close()


def run_alerts(lake: str, settings: AlertSettings, webhook: str | None = None, kafka_config: dict | None = None,
               kafka_topic: str | None = None) -> list[AlertRecord]:
    """Evaluate, record what is new, then deliver whatever the channels have not had yet."""
    try:
        _open_channels(lake, webhook, kafka_config, kafka_topic)
    except OSError as exc:
        raise AlertStoreError(f"cannot record deliveries in {lake}: {exc.strerror or exc}") from None
    new = record_new(lake, evaluate(lake, settings))
    for a in new:
        log.info("alert %s %s=%s %s share %.2f vs %.2f (n=%d)", a.severity, a.key_kind, a.key, a.window_start,
                 a.observed_share, a.baseline_share, a.volume)
    deliver(lake, webhook, kafka_config, kafka_topic)
    return new


def summary(alerts: list[AlertRecord]) -> str:
    return json.dumps([{"key": f"{a.key_kind}:{a.key}", "window_start": a.window_start.isoformat(), "severity": a.severity,
                        "observed": a.observed_share, "baseline": a.baseline_share, "volume": a.volume} for a in alerts])
