"""Routed notices: which messages the recorded alerts call for, logged, then sent through apprise.

State is the delivery outbox beside the alerts (lake/outbox.py, on the lake's own storage:
a local directory or an object store alike):

* the notice log (`LAKE/_outbox/notices/`): one record per notice (routes.Notice), with
  deterministic ids, planned under the alerts writer lock from the alert store and the log
  itself (routes.open_episodes), so a pass that dies anywhere is simply planned again and a
  notice already logged is not added twice. Its first record lists the alerts that existed
  when routing was first enabled on this lake, so turning routing on never replays history.
* per destination (route x URL), the ledger of delivery.py: the notice ids it has accepted
  and when. A destination seen for the first time starts after the notices already logged.

A pass is: open (before the new alerts are recorded, so a crash between recording and
delivery leaves them to the next pass, not to "history") -> record -> plan -> deliver, each
destination through delivery.drain (in order, one retry helper, a failing destination keeps
its notices and the next one goes on). The guarantee is delivery.py's: at least once, and
once unless the process dies between a destination accepting a notice and its ledger write;
json:// and form:// destinations get the notice id as `Idempotency-Key` to deduplicate on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from finpulse.pipeline.alerts import routes as rules
from finpulse.pipeline.alerts.delivery import (
    AppriseTarget,
    Sender,
    apprise_send,
    delivery_key,
    drain,
    ledger,
    open_destination,
    recorded_alerts,
)
from finpulse.pipeline.alerts.routes import Example, Latest, Notice, Routes
from finpulse.pipeline.lake.locks import writer_lock
from finpulse.pipeline.lake.outbox import RecordLog
from finpulse.pipeline.lake.query import connect
from finpulse.pipeline.lake.storage import open_storage
from finpulse.pipeline.runtime import metrics

log = logging.getLogger(__name__)
HISTORIC = "historic"  # the id of the record listing the alerts routing began after
LEGACY_LOG = "_notify/notices.jsonl"  # where an older finpulse kept the notice log (local lakes)


def _log(lake: str | Path) -> RecordLog:
    return RecordLog(lake, "notices")


def read_log(lake: str | Path) -> tuple[set[str], list[Notice]]:
    """(alert ids that were history when routing began, notices in order)."""
    historic: set[str] = set()
    notices: list[Notice] = []
    for record in _log(lake).read() or []:
        if record["id"] == HISTORIC:
            historic.update(record["alerts"])
        else:
            notices.append(Notice.from_json(record["notice"]))
    return historic, notices


def _records(notices: list[Notice]) -> list[dict[str, Any]]:
    return [{"id": n.notice_id, "notice": n.to_json()} for n in notices]


def _adopt_legacy_log(lake: str | Path, notices: RecordLog) -> bool:
    """A notice log written by an older finpulse (one JSON line per notice) becomes this log."""
    text = open_storage(lake).read_text(LEGACY_LOG)
    if text is None:
        return False
    records: list[dict[str, Any]] = []
    for line in text[: text.rfind("\n") + 1].splitlines():  # a torn last line was never logged
        if line.strip():
            d = json.loads(line)
            records.append({"id": HISTORIC, "alerts": d["historic"]} if "historic" in d
                           else _records([Notice.from_json(d)])[0])
    notices.append(records, create=True)
    return True


def _targets(routes: Routes, send: Sender = apprise_send) -> list[AppriseTarget]:
    return [AppriseTarget(route.name, url, lambda n: rules.message(n, routes.dashboard_url), send)
            for route, url in rules.destinations(routes)]


def sent_log(lake: str | Path, route: str, url: str) -> dict[str, float] | None:
    """notice id -> unix time accepted, for one destination (None: never used on this lake)."""
    return ledger(lake, AppriseTarget(route, url, rules.message, apprise_send))[1]


def open_outbox(lake: str | Path, routes: Routes, alert_ids: set[str]) -> None:
    """First use on a lake: today's alerts are history. First use of a destination: it starts
    after the notices already logged. Called before a pass records anything new."""
    notices = _log(lake)
    if notices.read() is None and not _adopt_legacy_log(lake, notices):
        notices.append([{"id": HISTORIC, "alerts": sorted(alert_ids)}])
    for target in _targets(routes):
        open_destination(lake, target, lambda: [n.notice_id for n in read_log(lake)[1]])


# -- planning -------------------------------------------------------------------------------------
def story_count(con: Any, key_kind: str, key: str, start: datetime, end: datetime) -> int:
    """Distinct stories among the negative posts behind an alert.

    Seam for issue #15: when the lake has `story_id` (the first report of a near-duplicate story)
    this counts stories; until then it counts distinct post ids, which over-counts copies."""
    cols = {r[0] for r in con.execute("describe enriched").fetchall()}
    ident = "coalesce(story_id, id)" if "story_id" in cols else "id"
    match = _MATCH[key_kind]
    return con.execute(
        f"""select count(distinct {ident}) from enriched where {match} and published_at >= ?
                           and published_at < ? and sentiment = 'negative'""",
        [key, start, end],
    ).fetchone()[0]


_MATCH = {"company": "list_contains(coalesce(companies, tickers), ?)",
          "ticker": "list_contains(tickers, ?)", "topic": "topic = ?", "source": "source = ?", "kind": "kind = ?",
          "all": "? = 'all'"}


def examples(con: Any, ids: list[str], limit: int = 3) -> tuple[Example, ...]:
    if not ids:
        return ()
    rows = con.execute(
        """select distinct on (id) id, coalesce(title, text) t, source, url from enriched
                          where list_contains(?, id)""",
        [ids],
    ).fetchall()
    by_id = {r[0]: Example(r[0], r[1] or "", r[2], r[3]) for r in rows}
    return tuple(by_id[i] for i in ids if i in by_id)[:limit]


def latest_bucket(con: Any, bucket: str, key_kind: str, key: str, since: datetime, min_volume: int) -> Latest | None:
    row = con.execute(
        """select bucket, volume, negatives from sentiment_series(?, ?) where key = ? and bucket >= ?
                         and volume >= ? order by bucket desc limit 1""",
        [bucket, key_kind, key, since, min_volume],
    ).fetchone()
    return Latest(row[0], row[1], row[2] / row[1]) if row else None


def plan(
    lake: str | Path,
    historic: set[str],
    logged: list[Notice],
    alerts: list[Any],
    bucket: str,
    min_volume: int,
    now: datetime,
) -> list[Notice]:
    """The notices the alert store and the latest buckets call for that the log lacks (in order)."""
    from finpulse.pipeline.alerts.evaluate import _interval

    # an escalation rewrites its alert with a higher revision (one event, one alert): it is a new
    # notice under `alert_id#revision`
    done = {n.notice_id.split(":", 1)[1] for n in logged if n.kind != "resolved"}
    resolved_ids = {n.notice_id for n in logged if n.kind == "resolved"}
    todo = sorted((a for a in alerts if a.alert_id not in historic and delivery_key(a) not in done),
                  key=lambda a: (a.window_end, a.created_at, a.alert_id))
    episodes = rules.open_episodes(logged)
    if not todo and not episodes:
        return []
    new: list[Notice] = []
    con = connect(lake)
    try:
        for a in todo:
            kind = rules.classify(a.severity, episodes.get((a.key_kind, a.key)))
            stories = a.stories if getattr(a, "stories", None) is not None else \
                story_count(con, a.key_kind, a.key, a.window_start, a.window_end)
            notice = rules.notice_for_alert(a, kind, stories, examples(con, list(a.example_ids)))
            if getattr(a, "revision", None):
                notice = dataclasses.replace(notice, notice_id=f"{kind}:{delivery_key(a)}")
            new.append(notice)
            episodes = rules.open_episodes([*logged, *new])
        width = _interval(bucket)
        for (key_kind, key), episode in episodes.items():
            latest = latest_bucket(con, bucket, key_kind, key, episode.window_end, min_volume)
            if (
                latest is not None
                and rules.is_resolved(episode, latest, min_volume)
                and f"resolved:{episode.last_alert_id}" not in resolved_ids
            ):
                new.append(rules.notice_for_resolution(episode, key_kind, key, latest, now, width))
    finally:
        con.close()
    return new


def record_notices(lake: str | Path, notices: list[Notice]) -> None:
    _log(lake).append(_records(notices))


# -- delivery -------------------------------------------------------------------------------------
def _decider(route: rules.Route, now: datetime) -> Callable[[Any, list[float]], str]:
    return lambda notice, sent_at: rules.decide(route, notice, now, sent_at)


def _observer(route: str) -> Callable[[str], None]:
    return lambda outcome: metrics.observe_notification(route, outcome)


def deliver(
    lake: str | Path,
    routes: Routes,
    now: datetime | None = None,
    send: Sender = apprise_send,
    retries: int = 2,
    backoff: float = 0.5,
) -> dict[str, int]:
    """Send each destination its pending notices in order; returns counts by outcome.

    A destination stops at its first rate-limited or failed notice and keeps the rest for the
    next pass (order matters: an escalation must not overtake its alert); the other
    destinations are not affected. Notices held by quiet hours are skipped for now, so a critical
    one behind them still goes out; they follow when the quiet hours end."""
    now = now or datetime.now(timezone.utc)
    _, notices = read_log(lake)
    counts = {"sent": 0, "held": 0, "failed": 0, "skipped": 0}
    by_name = {r.name: r for r in routes.routes}
    for target in _targets(routes, send):
        route = by_name[target.route]
        wanted = [(n.notice_id, n) for n in notices if rules.matches(route, n)]
        got = drain(lake, target, wanted, decide=_decider(route, now), observe=_observer(route.name),
                    retries=retries, backoff=backoff)
        for k, v in got.items():
            counts[k] += v
    return counts


def pass_after_record(
    lake: str | Path,
    routes: Routes,
    bucket: str,
    min_volume: int,
    now: datetime | None = None,
    send: Sender = apprise_send,
) -> dict[str, int]:
    """Plan what the recorded alerts call for, log it, deliver. Called by run_alerts after recording."""
    now = now or datetime.now(timezone.utc)
    with writer_lock(lake):
        historic, logged = read_log(lake)
        alerts = recorded_alerts(lake)
        new = plan(lake, historic, logged, alerts, bucket, min_volume, now)
        record_notices(lake, new)
    for n in new:
        log.info("notice %s %s=%s %s", n.kind, n.key_kind, n.key, n.severity)
    return deliver(lake, routes, now, send)


__all__ = ["apprise_send", "deliver", "open_outbox", "pass_after_record", "plan", "read_log", "record_notices",
           "sent_log", "story_count"]
