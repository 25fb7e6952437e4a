"""`finpulse alerts`: evaluate the negative-spike detector over the lake and record alerts.

Series come from the `sentiment_series` macro (ids counted once, and by default each
near-duplicate story once: copies are buzz, not evidence), keyed by company (FB and META are one
key), so streamed and backfilled history give the same alerts. One event is one alert: its id
is fixed by the event's first window (key kind, key, bucket width, event start), so re-running
over the same range never writes it twice, and an escalation rewrites the same alert with a
higher `revision` (delivered again, as an update). New alerts land in the lake's `alerts` Delta
table (local or object store) in one commit per evaluation, then are sent on (webhook and/or
Kafka topic, and routes) by delivery.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

from finpulse.pipeline.alerts.delivery import deliver, open_channels
from finpulse.pipeline.alerts.detector import Bucket, detect_spikes
from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.faults import storage_unavailable
from finpulse.pipeline.lake.locks import writer_lock
from finpulse.pipeline.lake.query import company_rows, connect
from finpulse.pipeline.runtime.settings import AlertSettings, DetectorConfig
from finpulse.schemas.errors import FinpulseError
from finpulse.schemas.records import AlertRecord

log = logging.getLogger(__name__)
KEY_KINDS = ("company", "ticker", "topic", "source", "kind", "all")
UNITS = ("story", "post")
_NOT_STORED = {"bucket_start", "window_buckets", "channel", "event_start"}  # stored as window_start/end and in the id




def alert_id(key_kind: str, key: str, bucket: str, start: datetime) -> str:
    raw = f"{key_kind}\x1f{key}\x1f{bucket}\x1f{start.isoformat()}"
    return "a-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def _interval(bucket: str) -> timedelta:
    number, unit = bucket.split()
    unit = unit.lower().rstrip("s")  # as the CLI's bucket type and DuckDB take it: "2 Hours" too
    seconds = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[unit]
    return timedelta(seconds=int(number) * seconds)


def evaluate(lake: str | Path, settings: AlertSettings, now: datetime | None = None) -> list[AlertRecord]:
    """All spikes in the range (not yet deduplicated against the lake)."""
    now = now or datetime.now(timezone.utc)
    width = _interval(settings.bucket)
    detector = seasonal(settings.detector, width)
    if settings.unit == "story" and settings.min_stories is not None:
        detector = dataclasses.replace(detector, min_volume=settings.min_stories)
    if settings.unit not in UNITS:
        raise ValueError(f"unknown unit {settings.unit!r}; use {', '.join(UNITS)}")
    con = connect(lake)
    try:
        history_from = settings.since - width * detector.history_buckets if settings.since else None
        alerts: list[AlertRecord] = []
        for kind in settings.key_kinds:
            if kind not in KEY_KINDS:
                raise ValueError(f"unknown key kind {kind!r}; use {', '.join(KEY_KINDS)}")
            where = ["true"]
            params: list[object] = [settings.bucket, kind, settings.unit]
            if history_from:
                where.append("bucket >= ?")
                params.append(history_from)
            if settings.until:
                where.append("bucket < ?")
                params.append(settings.until)
            rows = con.execute(f"select bucket, key, volume, negatives from sentiment_series(?, ?, unit := ?) "
                               f"where {' and '.join(where)} order by key, bucket", params).fetchall()
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
                    evidence = _evidence(con, kind, key, window_start, spike.bucket_start + width)
                    measured = {k: v for k, v in dataclasses.asdict(spike).items() if k not in _NOT_STORED}
                    alerts.append(AlertRecord(
                        **measured, alert_id=alert_id(kind, key, settings.bucket, spike.event_start or window_start),
                        key_kind=kind, key=key, bucket_width=settings.bucket, window_start=window_start,
                        window_end=spike.bucket_start + width, created_at=now, unit=settings.unit, **evidence))
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


_COMPANY_KEYS = {"company": "coalesce(companies, tickers)", "ticker": "tickers"}
_MATCH = {"company": "list_contains(coalesce(companies, tickers), ?)", "ticker": "list_contains(tickers, ?)",
          "topic": "topic = ?", "source": "source = ?", "kind": "kind = ?", "all": "? = 'all'"}


def _evidence(con, kind: str, key: str, start: datetime, end: datetime, limit: int = 5) -> dict:
    """What stands behind an alert: distinct negative stories and their sources, all negative posts
    (copies included), and up to `limit` example ids, the most negative first report of each story.
    For a company or ticker, "negative" is that company's own sentiment (the one the series counted),
    so a post negative about another company is no evidence."""
    source, match = "enriched", _MATCH[kind]
    if kind in _COMPANY_KEYS:
        source, match = company_rows("enriched", _COMPANY_KEYS[kind]), "ticker = ?"
    rows = con.execute(f"""select distinct on (id) id, coalesce(story_id, id) story, source, sentiment_score,
                                  published_at
                           from {source}
                           where {match} and published_at >= ? and published_at < ? and sentiment = 'negative'
                           order by id""", [key, start, end]).fetchall()
    first: dict[str, tuple] = {}
    for r in sorted(rows, key=lambda r: (r[4], r[0])):
        first.setdefault(r[1], r)
    examples = [r[0] for r in sorted(first.values(), key=lambda r: (r[3], r[0]))[:limit]]
    return {"example_ids": examples, "stories": len(first), "sources": len({r[2] for r in rows}), "posts": len(rows)}


def existing_ids(lake: str | Path) -> set[str]:
    return set(existing_revisions(lake))


def existing_revisions(lake: str | Path) -> dict[str, int]:
    """alert_id -> latest recorded revision."""
    con = connect(lake)
    try:
        return {r[0]: r[1] for r in con.execute("select alert_id, coalesce(revision, 0) from alerts").fetchall()}
    finally:
        con.close()


class AlertStoreError(FinpulseError, ValueError):
    """The lake cannot take the alerts (read-only, disk full). A ValueError, so the CLI reports it plainly."""


def _commit_alerts(lake: str | Path, new: list[AlertRecord]) -> None:
    """One Delta commit adding the alerts whose id the table does not hold (a merge: inserts only)."""
    data = tables.rows_table("alerts", [a.model_dump() for a in new], [f"{a.created_at:%Y-%m-%d}" for a in new])
    dt = tables.open_table(lake, "alerts")
    if dt is None:
        tables.append(lake, "alerts", data, metadata={"finpulse.op": "alerts"})
        return
    from deltalake import CommitProperties

    # insert unless the table holds the same alert at this or a higher revision (a concurrent
    # writer on an object store, where there is no flock, may have recorded it meanwhile)
    (dt.merge(data, source_alias="s", target_alias="t", merge_schema=True,
              predicate="t.alert_id = s.alert_id AND coalesce(t.revision, 0) >= coalesce(s.revision, 0)",
              commit_properties=CommitProperties(max_commit_retries=tables.COMMIT_RETRIES,
                                                 custom_metadata={"finpulse.op": "alerts"}))
       .when_not_matched_insert_all().execute())


def record_new(lake: str | Path, alerts: list[AlertRecord]) -> list[AlertRecord]:
    """Record in the lake's `alerts` table the alerts it does not have yet, or has at a lower
    revision (escalations), in one commit; returns them.

    Under the writer lock, so reading the existing ids and adding the new ones is one step; the
    commit is atomic, so a killed run leaves all of its alerts or none.
    """
    try:
        with writer_lock(lake):
            seen = existing_revisions(lake)
            new = [a for a in alerts if a.alert_id not in seen or (a.revision or 0) > seen[a.alert_id]]
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


def run_alerts(lake: str, settings: AlertSettings, webhook: str | None = None, kafka_config: dict | None = None,
               kafka_topic: str | None = None, routes=None) -> list[AlertRecord]:
    """Evaluate, record what is new, then deliver whatever the channels have not had yet.

    `routes` (alerts/routes.py): also route notices (new, escalated, resolved) through apprise,
    with the outbox of alerts/notify.py."""
    from finpulse.pipeline.alerts import notify
    from finpulse.pipeline.runtime import metrics

    try:
        open_channels(lake, webhook, kafka_config, kafka_topic)
        if routes is not None:
            notify.open_outbox(lake, routes, existing_ids(lake))
    except OSError as exc:
        raise AlertStoreError(f"cannot record deliveries in {lake}: {exc.strerror or exc}") from None
    new = record_new(lake, evaluate(lake, settings))
    metrics.observe_alerts(a.severity for a in new)
    for a in new:
        log.info("%s", message(a))
    deliver(lake, webhook, kafka_config, kafka_topic)
    if routes is not None:
        floor = settings.detector.min_volume
        if settings.unit == "story" and settings.min_stories is not None:
            floor = settings.min_stories
        notify.pass_after_record(lake, routes, settings.bucket, floor)
    metrics.heartbeat()
    return new


def message(a: AlertRecord) -> str:
    """One line for people: what, how bad, and how much independent evidence stands behind it."""
    what = "escalated to" if a.revision else "alert"
    unit = "stories" if (a.unit or "post") == "story" else "posts"
    behind = f"; {a.stories} distinct negative stories from {a.sources} sources ({a.posts} posts with copies)" \
        if a.stories is not None else ""
    return (f"{what} {a.severity}: {a.key_kind} {a.key} negative share {a.observed_share:.0%} vs {a.baseline_share:.0%} "
            f"({a.negatives} of {a.volume} {unit}, {a.window_start:%Y-%m-%d %H:%M}-{a.window_end:%H:%M} UTC){behind}")


def summary(alerts: list[AlertRecord]) -> str:
    return json.dumps([{"key": f"{a.key_kind}:{a.key}", "window_start": a.window_start.isoformat(), "severity": a.severity,
                        "observed": a.observed_share, "baseline": a.baseline_share, "volume": a.volume,
                        "stories": a.stories, "sources": a.sources, "posts": a.posts, "revision": a.revision,
                        "message": message(a)} for a in alerts])
