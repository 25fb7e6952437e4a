"""Routed alert delivery through apprise, with an outbox: nothing lost, nothing sent twice.

State lives next to the alerts, in LAKE/_notify/ (local lakes; the alerts writer lock covers it):

* `notices.jsonl`: the outbox, one notice per line (routes.Notice), appended durably (fsync)
  under the alerts writer lock. Its first line lists the alerts that existed when routing was
  first enabled on this lake, so turning routing on never replays history. Notices are planned
  from the alert store and the log itself (routes.open_episodes), with deterministic ids, so a
  pass that dies anywhere is simply planned again: what is already in the log is not added twice.
* `dest-<hash>.sent`: per destination (route x URL), the notice ids it has accepted and when.
  A destination seen for the first time starts after the notices already logged.

A pass is: open (before the new alerts are recorded, so a crash between recording and
delivery leaves them to the next pass, not to "history") -> record -> plan -> deliver. Each
destination works through its own pending notices in order, with retries and backoff; a
destination that keeps failing keeps its notices pending and the next destination goes on.
The one window left is a crash after a destination accepted a message and before its `.sent`
line is written: that message is sent again on restart (at least once; nothing is lost).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from finpulse.pipeline.alerts import routes as rules
from finpulse.pipeline.alerts.delivery import delivery_key, recorded_alerts
from finpulse.pipeline.alerts.routes import Example, Latest, Notice, Routes
from finpulse.pipeline.lake.locks import writer_lock
from finpulse.pipeline.lake.query import connect
from finpulse.pipeline.runtime import metrics

log = logging.getLogger(__name__)
Sender = Callable[[str, str, str], bool]  # (url, title, body) -> accepted


def _folder(lake: str | Path) -> Path:
    return Path(lake) / "_notify"


def _append(path: Path, lines: list[str]) -> None:
    """Append whole lines and fsync: a crash leaves at most a torn last line, which readers skip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    text = path.read_text()
    complete = text if text.endswith("\n") else text.rsplit("\n", 1)[0] + "\n" if "\n" in text else ""
    return [line for line in complete.splitlines() if line.strip()]


def read_log(lake: str | Path) -> tuple[set[str], list[Notice]]:
    """(alert ids that were history when routing began, notices in order)."""
    historic: set[str] = set()
    notices: list[Notice] = []
    for line in _lines(_folder(lake) / "notices.jsonl"):
        d = json.loads(line)
        if "historic" in d:
            historic.update(d["historic"])
        else:
            notices.append(Notice.from_json(d))
    return historic, notices


def _dest_file(lake: str | Path, route: str, url: str) -> Path:
    digest = hashlib.sha256((route + "\x1f" + url).encode()).hexdigest()[:16]
    return _folder(lake) / f"dest-{digest}.sent"


def sent_log(lake: str | Path, route: str, url: str) -> dict[str, float] | None:
    """notice id -> unix time accepted, for one destination (None: never used on this lake)."""
    f = _dest_file(lake, route, url)
    if not f.is_file():
        return None
    out: dict[str, float] = {}
    for line in _lines(f):
        notice_id, _, ts = line.rpartition(" ")
        out[notice_id] = float(ts)
    return out


def open_outbox(lake: str | Path, routes: Routes, alert_ids: set[str]) -> None:
    """First use on a lake: today's alerts are history. First use of a destination: it starts
    after the notices already logged. Called before a pass records anything new."""
    outbox = _folder(lake) / "notices.jsonl"
    if not outbox.is_file():
        _append(outbox, [json.dumps({"historic": sorted(alert_ids)})])
    _, notices = read_log(lake)
    for route, url in rules.destinations(routes):
        if sent_log(lake, route.name, url) is None:
            _append(_dest_file(lake, route.name, url), [f"{n.notice_id} 0" for n in notices])


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
    if notices:
        _append(_folder(lake) / "notices.jsonl", [json.dumps(n.to_json()) for n in notices])


# -- delivery -------------------------------------------------------------------------------------
def apprise_send(url: str, title: str, body: str) -> bool:
    """One message through apprise (Slack, Teams, mailto, PagerDuty, Telegram, json://, ...)."""
    import apprise

    app = apprise.Apprise()
    if not app.add(url):
        log.error("routes: %s is not an apprise URL apprise can use", _redact(url))
        return False
    return bool(app.notify(title=title, body=body))


def _redact(url: str) -> str:
    """Destinations carry secrets (webhook tokens, passwords): log the scheme and host only."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/…"


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
    for route, url in rules.destinations(routes):
        done = sent_log(lake, route.name, url) or {}
        sent_at = sorted(done.values())
        for n in notices:
            if n.notice_id in done or not rules.matches(route, n):
                continue
            decision = rules.decide(route, n, now, sent_at)
            if decision == "stale":  # about a window older than max_age: recorded as done, never sent
                _append(_dest_file(lake, route.name, url), [f"{n.notice_id} 0"])
                counts["skipped"] += 1
                metrics.observe_notification(route.name, "skipped_stale")
                continue
            if decision != "send":
                counts["held"] += 1
                metrics.observe_notification(route.name, f"held_{decision}")
                if decision == "quiet":
                    continue  # a critical notice behind it still goes out (quiet_override)
                break
            title, body = rules.message(n, routes.dashboard_url)
            if not _send_with_retries(send, url, title, body, retries, backoff):
                counts["failed"] += 1
                metrics.observe_notification(route.name, "failed")
                log.error(
                    "route %s: %s did not accept notice %s; kept, retried next pass",
                    route.name,
                    _redact(url),
                    n.notice_id,
                )
                break
            ts = time.time()
            _append(_dest_file(lake, route.name, url), [f"{n.notice_id} {ts:.3f}"])
            sent_at.append(ts)
            counts["sent"] += 1
            metrics.observe_notification(route.name, "sent")
    return counts


def _send_with_retries(send: Sender, url: str, title: str, body: str, retries: int, backoff: float) -> bool:
    for attempt in range(retries + 1):
        try:
            if send(url, title, body):
                return True
        except Exception as exc:  # noqa: BLE001 - one destination's failure must not stop the others
            log.warning("routes: sending to %s raised %s", _redact(url), type(exc).__name__)
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    return False


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


__all__ = ["apprise_send", "deliver", "open_outbox", "pass_after_record", "plan", "read_log", "sent_log", "story_count"]
