"""Alert routing rules as pure functions: which notices go where, when, and what they say.

A routes file (TOML) names destinations as apprise URLs (Slack, Teams, email, PagerDuty,
Telegram, a JSON webhook, ...) and, per route, which severities and which companies or topics
it wants, quiet hours, and a rate limit:

    dashboard_url = "https://finpulse.desk.example"      # links in messages (optional)

    [[route]]
    name = "equities-desk"
    urls = ["slack://T000/B000/XXXX", "mailto://alerts:pw@example.com"]
    severities = ["high", "critical"]        # default: all
    keys = ["AAPL", "BA"]                    # companies (ticker keys) or topics; default: all
    key_kinds = ["company"]                  # default: all ("ticker" routes also take company alerts)
    quiet_hours = "22:00-07:00"              # held until they end, except `quiet_override` and above
    timezone = "Europe/London"               # of the quiet hours (default UTC)
    quiet_override = "critical"
    rate_limit = "6/hour"                    # at most 6 messages per destination per hour; the rest wait
    max_age = "6 hours"                      # skip notices about older windows (default: no limit)
    resolved = true                          # also send "back to normal" messages (default true)

A notice is one message about one key's episode: `alert` (a new spike), `escalation` (severity
rose while the episode was open), `ongoing` (another alert, not higher), `resolved` (the share
is back near the baseline). Nothing here touches the network or the disk: notify.py does, and
the tests exercise these rules directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import tomllib

from finpulse.schemas.errors import ConfigError

SEVERITIES = ("medium", "high", "critical")
RANK = {s: i for i, s in enumerate(SEVERITIES, 1)}
NOTICE_KINDS = ("alert", "escalation", "ongoing", "resolved")
_PERIODS = {"minute": 60, "hour": 3600, "day": 86400}


class RoutesError(ConfigError, ValueError):
    """A routes file that cannot be used: the CLI reports it with exit 2 (see schemas/errors.py)."""


@dataclass(frozen=True)
class Route:
    name: str
    urls: tuple[str, ...]
    severities: tuple[str, ...] = SEVERITIES
    keys: tuple[str, ...] = ()  # empty: every key
    key_kinds: tuple[str, ...] = ()  # empty: every kind
    quiet_hours: tuple[time, time] | None = None
    timezone: str = "UTC"
    quiet_override: str = "critical"
    rate_limit: tuple[int, int] | None = None  # (messages, seconds)
    resolved: bool = True
    max_age: int | None = None  # seconds: notices about windows older than this are skipped, not sent


@dataclass(frozen=True)
class Routes:
    routes: tuple[Route, ...]
    dashboard_url: str | None = None


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    source: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Notice:
    """One message about one key's episode. `notice_id` is deterministic, so planning twice
    (after a crash) yields the same notice and the outbox keeps it once."""

    notice_id: str
    kind: str  # alert | escalation | ongoing | resolved
    key_kind: str
    key: str
    severity: str
    alert_id: str
    observed_share: float
    baseline_share: float
    volume: int
    window_start: datetime
    window_end: datetime
    stories: int = 0  # distinct stories (posts until story ids exist) behind the alert
    examples: tuple[Example, ...] = ()
    sources: int | None = None  # distinct sources of the negative posts behind it (None: not recorded)
    posts: int | None = None  # negative posts behind it, copies included
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("window_start", "window_end", "created_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Notice:
        d = dict(d)
        for k in ("window_start", "window_end", "created_at"):
            d[k] = datetime.fromisoformat(d[k]) if d.get(k) else None
        d["examples"] = tuple(Example(**e) for e in d.get("examples") or ())
        return cls(**d)


# -- the routes file ------------------------------------------------------------------------------
def _clock(value: str) -> time:
    try:
        return time.fromisoformat(value.strip())
    except ValueError:
        raise RoutesError(f"quiet hours: {value!r} is not a HH:MM time") from None


def parse_rate(text: str) -> tuple[int, int]:
    """'6/hour' -> (6, 3600); also 'N/minute', 'N/day', 'N/30m' style '10/15 minutes'."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)?\s*(minute|hour|day)s?\s*", text)
    if not m or int(m.group(1)) < 1:
        raise RoutesError(f"rate_limit {text!r}: use N/minute, N/hour, N/day or N/K hours")
    return int(m.group(1)), int(m.group(2) or 1) * _PERIODS[m.group(3)]


def parse_age(text: str) -> int:
    """'6 hours' -> 21600 (also minutes, days)."""
    m = re.fullmatch(r"\s*(\d+)\s*(minute|hour|day)s?\s*", text)
    if not m:
        raise RoutesError(f"max_age {text!r}: use N minutes, N hours or N days")
    return int(m.group(1)) * _PERIODS[m.group(2)]


def parse_routes(data: dict[str, Any]) -> Routes:
    routes = []
    for i, r in enumerate(data.get("route") or []):
        name = str(r.get("name") or f"route-{i + 1}")
        urls = r.get("urls") or ([r["url"]] if r.get("url") else [])
        if not urls:
            raise RoutesError(f"route {name}: give at least one apprise URL in `urls`")
        severities = tuple(r.get("severities") or SEVERITIES)
        for s in (*severities, r.get("quiet_override", "critical")):
            if s not in RANK:
                raise RoutesError(f"route {name}: unknown severity {s!r}; use {', '.join(SEVERITIES)}")
        quiet = None
        if r.get("quiet_hours"):
            start, _, end = str(r["quiet_hours"]).partition("-")
            quiet = (_clock(start), _clock(end))
        tz = r.get("timezone", "UTC")
        try:
            ZoneInfo(tz)
        except Exception:  # noqa: BLE001 - zoneinfo raises several kinds
            raise RoutesError(f"route {name}: unknown timezone {tz!r}") from None
        routes.append(
            Route(
                name=name,
                urls=tuple(urls),
                severities=severities,
                keys=tuple(r.get("keys") or ()),
                key_kinds=tuple(r.get("key_kinds") or ()),
                quiet_hours=quiet,
                timezone=tz,
                quiet_override=r.get("quiet_override", "critical"),
                rate_limit=parse_rate(r["rate_limit"]) if r.get("rate_limit") else None,
                resolved=bool(r.get("resolved", True)),
                max_age=parse_age(r["max_age"]) if r.get("max_age") else None,
            )
        )
    if len({r.name for r in routes}) != len(routes):
        raise RoutesError("route names must be unique (delivery state is kept per route)")
    return Routes(tuple(routes), data.get("dashboard_url"))


def load_routes(path: str | Path) -> Routes:
    try:
        return parse_routes(tomllib.loads(Path(path).read_text()))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RoutesError(f"cannot read routes file {path}: {exc}") from None


# -- rules ----------------------------------------------------------------------------------------
def matches(route: Route, notice: Notice) -> bool:
    """Does this route want this notice at all (severity, key, key kind, resolved messages)?"""
    if notice.kind == "resolved" and not route.resolved:
        return False
    if notice.severity not in route.severities:
        return False
    # a company key is a ticker (the company's main one), so routes written for tickers take company alerts
    kinds = set(route.key_kinds) | ({"company"} if "ticker" in route.key_kinds else set())
    if route.key_kinds and notice.key_kind not in kinds:
        return False
    return not route.keys or notice.key in route.keys


def in_quiet_hours(route: Route, now: datetime) -> bool:
    if route.quiet_hours is None:
        return False
    start, end = route.quiet_hours
    local = now.astimezone(ZoneInfo(route.timezone)).time()
    return start <= local < end if start <= end else local >= start or local < end


def decide(route: Route, notice: Notice, now: datetime, sent_at: Sequence[float]) -> str:
    """'send' or why not now: 'stale' (older than the route's max_age: skipped for good),
    'quiet' (held until quiet hours end) or 'rate' (held until the window has room).
    `sent_at`: unix times of this destination's earlier messages."""
    if route.max_age is not None and (now - notice.window_end).total_seconds() > route.max_age:
        return "stale"
    if in_quiet_hours(route, now) and RANK[notice.severity] < RANK[route.quiet_override]:
        return "quiet"
    if route.rate_limit is not None:
        limit, seconds = route.rate_limit
        if sum(1 for t in sent_at if now.timestamp() - t < seconds) >= limit:
            return "rate"
    return "send"


# -- episodes: which notices the alerts and the latest shares call for -----------------------------
@dataclass
class Episode:
    """A key's open episode, as the notice log tells it (the log is the only state)."""

    severity: str
    baseline_share: float
    last_alert_id: str
    window_end: datetime


def open_episodes(log: Iterable[Notice]) -> dict[tuple[str, str], Episode]:
    episodes: dict[tuple[str, str], Episode] = {}
    for n in log:
        key = (n.key_kind, n.key)
        if n.kind == "resolved":
            episodes.pop(key, None)
        elif key in episodes:
            e = episodes[key]
            e.severity = max(e.severity, n.severity, key=RANK.__getitem__)
            e.last_alert_id, e.window_end = n.alert_id, max(e.window_end, n.window_end)
        else:
            episodes[key] = Episode(n.severity, n.baseline_share, n.alert_id, n.window_end)
    return episodes


def classify(alert_severity: str, episode: Episode | None) -> str:
    if episode is None:
        return "alert"
    return "escalation" if RANK[alert_severity] > RANK[episode.severity] else "ongoing"


@dataclass(frozen=True)
class Latest:
    """A key's most recent bucket with enough posts to judge."""

    bucket_start: datetime
    volume: int
    share: float


def is_resolved(episode: Episode, latest: Latest | None, min_volume: int = 20, near: float = 0.05) -> bool:
    """Back near the baseline: a bucket after the alert's window, with enough posts, whose
    negative share is within `near` of the episode's baseline (or below it)."""
    return (
        latest is not None
        and latest.bucket_start >= episode.window_end
        and latest.volume >= min_volume
        and latest.share <= episode.baseline_share + near
    )


def notice_for_alert(alert: Any, kind: str, stories: int = 0, examples: tuple[Example, ...] = ()) -> Notice:
    return Notice(notice_id=f"{kind}:{alert.alert_id}", kind=kind, key_kind=alert.key_kind, key=alert.key,
                  severity=alert.severity, alert_id=alert.alert_id, observed_share=alert.observed_share,
                  baseline_share=alert.baseline_share, volume=alert.volume, window_start=alert.window_start,
                  window_end=alert.window_end, stories=stories, examples=examples, created_at=alert.created_at,
                  sources=getattr(alert, "sources", None), posts=getattr(alert, "posts", None))


def notice_for_resolution(
    episode: Episode, key_kind: str, key: str, latest: Latest, now: datetime, width: timedelta
) -> Notice:
    return Notice(
        notice_id=f"resolved:{episode.last_alert_id}",
        kind="resolved",
        key_kind=key_kind,
        key=key,
        severity=episode.severity,
        alert_id=episode.last_alert_id,
        observed_share=round(latest.share, 4),
        baseline_share=episode.baseline_share,
        volume=latest.volume,
        window_start=latest.bucket_start,
        window_end=latest.bucket_start + width,
        created_at=now,
    )


# -- the message ----------------------------------------------------------------------------------
def dashboard_link(base: str | None, notice: Notice) -> str | None:
    """The dashboard filtered to this key and the alert's days (dashboard/app.py reads these)."""
    if not base:
        return None
    params = {"company": "ticker", "ticker": "ticker", "topic": "topic", "source": "source", "kind": "kind"}
    param = params.get(notice.key_kind)
    query = {param: notice.key} if param else {}
    query.update(
        {"from": f"{notice.window_start:%Y-%m-%d}", "to": f"{notice.window_end - timedelta(seconds=1):%Y-%m-%d}"}
    )
    return f"{base.rstrip('/')}/?{urlencode(query)}"


def message(notice: Notice, dashboard_url: str | None = None) -> tuple[str, str]:
    """(title, body) in plain text, readable in Slack, Teams, email and a pager alike."""
    what = f"{notice.key_kind} {notice.key}" if notice.key_kind not in ("ticker", "company") else notice.key
    sev = notice.severity.upper()
    title = {
        "alert": f"[{sev}] negative spike on {what}",
        "escalation": f"[{sev}] escalated: negative spike on {what}",
        "ongoing": f"[{sev}] still negative: {what}",
        "resolved": f"[RESOLVED] {what} back near baseline",
    }[notice.kind]
    window = f"{notice.window_start:%Y-%m-%d %H:%M}-{notice.window_end:%H:%M} UTC"
    if notice.kind == "resolved":
        lines = [
            f"Negative share {notice.observed_share:.0%} over {notice.volume} posts ({window}), "
            f"baseline {notice.baseline_share:.0%}."
        ]
    else:
        ratio = notice.observed_share / notice.baseline_share if notice.baseline_share else float("inf")
        lines = [f"Negative share {notice.observed_share:.0%} vs baseline {notice.baseline_share:.0%} ({ratio:.1f}x) "
                 f"over {notice.volume} {'stories' if notice.sources is not None else 'posts'}, {window}.",
                 f"{notice.stories} distinct {'story' if notice.stories == 1 else 'stories'} behind it"
                 + (f", from {notice.sources} source{'s' if notice.sources != 1 else ''} "
                    f"({notice.posts} posts with copies)."
                    if notice.sources is not None else ".")]
        if notice.examples:
            lines.append("Top examples:")
            lines += [
                f"- {_short(e.text)}" + (f" ({e.source})" if e.source else "") + (f" {e.url}" if e.url else "")
                for e in notice.examples
            ]
    link = dashboard_link(dashboard_url, notice)
    if link:
        lines.append(f"Dashboard: {link}")
    lines.append(f"alert {notice.alert_id}")
    return title, "\n".join(lines)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def destinations(routes: Routes) -> list[tuple[Route, str]]:
    return [(r, url) for r in routes.routes for url in r.urls]


__all__ = [
    "Example",
    "Latest",
    "Notice",
    "Route",
    "Routes",
    "RoutesError",
    "classify",
    "decide",
    "destinations",
    "in_quiet_hours",
    "is_resolved",
    "load_routes",
    "matches",
    "message",
    "open_episodes",
    "parse_routes",
    "parse_rate",
]
