"""`finpulse signal`: does per-company sentiment say anything about the stock's next moves?

DuckDB does the heavy part over the lake's views (lake/query.py): every post, once per id, is
keyed to the companies it names with that company's own sentiment and relevance (`company_rows`,
the same rows the alerts and the dashboard count), each near-duplicate story counted once per
company (in the session of its first post; `unit="post"` counts every row), placed in its trading
session (sessions.py: 16:00 New York close, weekends and holidays to the next trading day of the
price calendar) and summed per company and session. Prices become log returns close to close
(none across a gap), and abnormal returns are the stock's log return minus the equal-weighted
mean of the loaded companies that session, or minus a named benchmark's (`benchmark`).

What is left are companies x sessions matrices, and stats.py does the rest:

- IC by horizon (0, 1, 5 sessions) for three fields: the relevance-weighted mean sentiment score,
  the volume of distinct stories, and the negative share, so a user sees which one carries
  information (negative share should have a negative IC if bad news precedes bad returns);
- the event study of the lake's alerts (company and ticker alerts; day 0 is the session of the
  alert's window end, when it was raised): mean CAR over [-1, +1] and [+1, +5] with t-statistics
  and the share below -2%, by severity, beside the same figures for every company-day.

`bucket="week"` sums sessions into ISO weeks for the IC (horizons then count weeks); the event
study stays in sessions.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np

from finpulse.pipeline.lake.query import company_rows, connect
from finpulse.pipeline.market import stats
from finpulse.pipeline.market.load import TABLE, require_lake
from finpulse.pipeline.market.prices import normalise_ticker
from finpulse.pipeline.market.sessions import CLOSE, EXCHANGE_TZ, candidate_day, session_day, session_sql
from finpulse.schemas.errors import FinpulseError

HORIZONS = (0, 1, 5)
WINDOWS = ((-1, 1), (1, 5))
FIELDS = ("score", "volume", "negative_share")
SEVERITIES = ("medium", "high", "critical")
BUCKETS = ("day", "week")
UNITS = ("story", "post")
CURVE = (-5, 10)


class NoPrices(FinpulseError):
    """The lake has no usable prices for the study."""


@dataclass(frozen=True)
class SignalSettings:
    since: datetime | None = None
    until: datetime | None = None
    bucket: str = "day"
    benchmark: str | None = None  # a ticker loaded as a benchmark; None: the equal-weighted market
    unit: str = "story"
    horizons: tuple[int, ...] = HORIZONS
    windows: tuple[tuple[int, int], ...] = WINDOWS
    min_names: int = stats.MIN_NAMES


@dataclass
class Panel:
    """Companies x sessions: returns and the per-session sums of the posts about each company."""

    calendar: list[date]
    companies: list[str]
    abnormal: np.ndarray
    stories: np.ndarray  # 0 where a company had no story that session (within the posts' coverage)
    negatives: np.ndarray
    weighted: np.ndarray  # sum of score x relevance
    weight: np.ndarray  # sum of relevance
    period: slice  # the sessions inside since/until
    market: str
    unpriced: list[str] = field(default_factory=list)  # companies with posts but no prices

    def field(self, name: str) -> np.ndarray:
        """One signal matrix: "score" (relevance-weighted mean), "volume" (stories), "negative_share"."""
        with np.errstate(invalid="ignore", divide="ignore"):
            if name == "volume":
                return self.stories.astype(float)
            if name == "negative_share":
                return np.where(self.stories > 0, self.negatives / self.stories, np.nan)
            if name == "score":
                return np.where(self.weight > 0, self.weighted / self.weight, np.nan)
        raise ValueError(f"unknown field {name!r}; one of {', '.join(FIELDS)}")


def _calendar(con) -> list[date]:
    return [r[0] for r in con.execute(f"SELECT DISTINCT day FROM {TABLE} ORDER BY day").fetchall()]


def period_slice(calendar: list[date], since: datetime | None, until: datetime | None) -> slice:
    lo = 0 if since is None else bisect.bisect_left(calendar, candidate_day(since))
    hi = len(calendar) if until is None else bisect.bisect_left(calendar, candidate_day(until))
    return slice(lo, max(lo, hi))


def _post_filter(settings: SignalSettings) -> tuple[str, list]:
    where, params = ["true"], []
    if settings.since is not None:
        where.append("published_at >= ?")
        params.append(settings.since)
    if settings.until is not None:
        where.append("published_at < ?")
        params.append(settings.until)
    return " AND ".join(where), params


def build_panel(con, settings: SignalSettings) -> Panel:
    """The matrices for the study, aggregated by DuckDB on `con` (a lake connection)."""
    calendar = _calendar(con)
    if len(calendar) < 2:
        raise NoPrices("the lake holds no prices (or one day of them): load daily prices first with "
                       "`finpulse prices load --lake L --file prices.csv` (docs/ANALYTICS.md lists free sources)")
    index = {d: i for i, d in enumerate(calendar)}
    con.execute(f"CREATE OR REPLACE TEMP VIEW calendar AS SELECT DISTINCT day FROM {TABLE}")
    returns = con.sql(f"""
        WITH cal AS (SELECT day, row_number() OVER (ORDER BY day) - 1 AS t FROM calendar),
        p AS (SELECT company, kind, t, close FROM {TABLE} JOIN cal USING (day)),
        r AS (SELECT company, kind, t, ln(close / lag(close) OVER w) AS r, t - lag(t) OVER w AS step
              FROM p WINDOW w AS (PARTITION BY company ORDER BY t))
        SELECT company, kind, t, r FROM r WHERE step = 1""").to_arrow_table().to_pydict()
    kinds = dict(zip(returns["company"], returns["kind"], strict=True))
    companies = sorted(c for c, k in kinds.items() if k == "company")
    if not companies:
        raise NoPrices("the lake's prices hold no company with two consecutive days; load daily prices of the "
                       "companies the posts name")
    row = {c: i for i, c in enumerate(companies)}
    sessions = len(calendar)
    raw = np.full((len(companies), sessions), np.nan)
    bench = None
    benchmark = normalise_ticker(settings.benchmark) if settings.benchmark else None
    if benchmark and kinds.get(benchmark) is None:
        raise NoPrices(f"the benchmark {benchmark} has no prices in the lake; load them with "
                       f"`finpulse prices load --lake L --file F --benchmark {benchmark}`")
    if benchmark:
        bench = np.full(sessions, np.nan)
    for c, t, r in zip(returns["company"], returns["t"], returns["r"], strict=True):
        if c in row:
            raw[row[c], t] = r
        if c == benchmark and bench is not None:
            bench[t] = r
    if bench is None:
        market = leave_one_out_mean(raw)
        label = f"equal-weighted mean of the other {len(companies) - 1} companies"
        abnormal = raw - market
    else:
        label = f"benchmark {benchmark}"
        abnormal = raw - bench[None, :]

    where, params = _post_filter(settings)
    keyed = company_rows("(SELECT * FROM posts)", "coalesce(companies, tickers)")
    sums = con.sql(f"""
        WITH posts AS (SELECT * FROM enriched WHERE {where}
                       QUALIFY row_number() OVER (PARTITION BY id ORDER BY ingested_at) = 1),
        keyed AS (SELECT id, published_at, sentiment, sentiment_score, relevance,
                         coalesce(story_id, id) AS story, ticker AS company FROM {keyed}),
        counted AS (SELECT * FROM keyed
                    QUALIFY ? = 'post' OR row_number() OVER (PARTITION BY company, story ORDER BY published_at, id) = 1)
        SELECT company, session, count(*) AS stories,
               count(*) FILTER (WHERE sentiment = 'negative') AS negatives,
               sum(sentiment_score * relevance) AS weighted, sum(relevance) AS weight
        FROM {session_sql("counted", "published_at")}
        GROUP BY ALL""", params=[*params, settings.unit]).to_arrow_table().to_pydict()
    shape = (len(companies), sessions)
    stories, negatives = np.zeros(shape), np.zeros(shape)
    weighted, weight = np.zeros(shape), np.zeros(shape)
    unpriced: set[str] = set()
    covered = []
    for c, s, n, neg, ws, w in zip(*(sums[k] for k in ("company", "session", "stories", "negatives", "weighted",
                                                        "weight")), strict=True):
        i = row.get(c)
        if i is None:
            unpriced.add(c)
            continue
        t = index[s]
        covered.append(t)
        stories[i, t], negatives[i, t], weighted[i, t], weight[i, t] = n, neg, ws or 0.0, w or 0.0
    if covered:  # outside the posts' coverage a zero is no evidence of silence
        stories[:, :min(covered)] = np.nan
        stories[:, max(covered) + 1:] = np.nan
    else:
        stories[:] = np.nan
    return Panel(calendar, companies, abnormal, stories, negatives, weighted, weight,
                 period_slice(calendar, settings.since, settings.until), label, sorted(unpriced))


def leave_one_out_mean(raw: np.ndarray) -> np.ndarray:
    """Each company's market: the mean return of the other companies that session (NaN below one).
    Leaving the stock out keeps its own move out of its benchmark: with N companies a plain mean
    would shrink every abnormal return by 1/N."""
    have = ~np.isnan(raw)
    total = np.where(have, raw, 0.0).sum(axis=0)[None, :] - np.where(have, raw, 0.0)
    others = have.sum(axis=0)[None, :] - have
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(others > 0, total / np.maximum(others, 1), np.nan)


def alert_events(con, panel: Panel, settings: SignalSettings) -> tuple[list[tuple[int, int, str]], dict]:
    """The lake's alerts in the period as events (see `events_from_alerts`)."""
    where, params = ["true"], []
    if settings.since is not None:
        where.append("window_end >= ?")
        params.append(settings.since)
    if settings.until is not None:
        where.append("window_end < ?")
        params.append(settings.until)
    rows = con.execute(f"SELECT key_kind, key, severity, window_end FROM alerts WHERE {' AND '.join(where)}",
                       params).fetchall()
    return events_from_alerts(panel, rows)


def events_from_alerts(panel: Panel, alerts) -> tuple[list[tuple[int, int, str]], dict]:
    """(company row, session column, severity) per company or ticker alert, given as (key_kind, key,
    severity, window_end): day 0 is the session of the window's end, when the alert was raised. One
    event per company and session (the most severe); what was left out is counted by reason."""
    from finpulse.pipeline.enrich.companies import load_gazetteer

    gazetteer = load_gazetteer()
    row = {c: i for i, c in enumerate(panel.companies)}
    index = {d: i for i, d in enumerate(panel.calendar)}
    skipped = {"not_a_company": 0, "after_the_prices": 0, "no_prices": 0, "same_session": 0}
    best: dict[tuple[int, int], str] = {}
    for kind, key, severity, raised in alerts:
        if kind not in ("company", "ticker"):
            skipped["not_a_company"] += 1
            continue
        company = gazetteer.company_key(key) if kind == "ticker" else key
        session = session_day(raised, panel.calendar)
        if company not in row:
            skipped["no_prices"] += 1
            continue
        if session is None:
            skipped["after_the_prices"] += 1
            continue
        slot = (row[company], index[session])
        if slot in best:
            skipped["same_session"] += 1
            if SEVERITIES.index(severity) <= SEVERITIES.index(best[slot]):
                continue
        best[slot] = severity
    return [(c, t, sev) for (c, t), sev in sorted(best.items())], skipped


def _weekly(panel: Panel) -> tuple[list[np.ndarray], np.ndarray, slice]:
    """Sessions summed into ISO weeks: ([stories, negatives, weighted, weight], abnormal, period)."""
    weeks = [d.isocalendar()[:2] for d in panel.calendar]
    starts = [i for i in range(len(weeks)) if i == 0 or weeks[i] != weeks[i - 1]]
    ends = starts[1:] + [len(weeks)]

    def fold(m: np.ndarray) -> np.ndarray:
        return np.stack([m[:, s:e].sum(axis=1) for s, e in zip(starts, ends, strict=True)], axis=1)

    sums = [fold(m) for m in (panel.stories, panel.negatives, panel.weighted, panel.weight)]
    lo = next((k for k, s in enumerate(starts) if s >= panel.period.start), len(starts))
    hi = next((k for k, s in enumerate(starts) if s >= panel.period.stop), len(starts))
    return sums, fold(panel.abnormal), slice(lo, hi)


def information_coefficients(panel: Panel, settings: SignalSettings) -> dict:
    """{"0": {"ic", "t", "days", "by_field": {field: {...}}}, ...}: the score's IC on top."""
    if settings.bucket == "week":
        (stories, negatives, weighted, weight), abnormal, period = _weekly(panel)
        weekly = Panel(panel.calendar, panel.companies, abnormal, stories, negatives, weighted, weight, period,
                       panel.market)
        source = weekly
    else:
        source, abnormal, period = panel, panel.abnormal, panel.period
    out: dict[str, dict] = {}
    for h in settings.horizons:
        by_field = {f: stats.ic_summary(source.field(f), abnormal, h, settings.min_names, period) for f in FIELDS}
        out[str(h)] = {**by_field["score"], "by_field": by_field}
    return out


def window_name(first: int, last: int) -> str:
    return f"car_{first:+d}_{last:+d}".replace("+0", "0")


def event_study(panel: Panel, events: list[tuple[int, int, str]], settings: SignalSettings) -> dict:
    """Per window: the alerts' CAR figures (all, and by severity) beside every company-day's."""
    out: dict[str, dict] = {}
    for first, last in settings.windows:
        car = stats.window_sums(panel.abnormal, first, last)
        by_severity = {s: stats.car_stats([car[c, t] for c, t, sev in events if sev == s]) for s in SEVERITIES}
        reference = car[:, panel.period]
        out[window_name(first, last)] = {"alerts": stats.car_stats([car[c, t] for c, t, _ in events]),
                                         "by_severity": by_severity,
                                         "reference": stats.car_stats(reference[~np.isnan(reference)])}
    return out


def run_study(con, settings: SignalSettings) -> tuple[Panel, list[tuple[int, int, str]], dict]:
    """The panel, the alert events and the report, on an open lake connection."""
    if settings.bucket not in BUCKETS:
        raise ValueError(f"unknown bucket {settings.bucket!r}; one of {', '.join(BUCKETS)}")
    if settings.unit not in UNITS:
        raise ValueError(f"unknown unit {settings.unit!r}; one of {', '.join(UNITS)}")
    panel = build_panel(con, settings)
    events, skipped = alert_events(con, panel, settings)
    period = panel.calendar[panel.period] if panel.period.stop > panel.period.start else []
    report = {
        "period": {"since": settings.since.isoformat() if settings.since else None,
                   "until": settings.until.isoformat() if settings.until else None,
                   "first_session": str(period[0]) if period else None,
                   "last_session": str(period[-1]) if period else None,
                   "sessions": len(period), "bucket": settings.bucket, "unit": settings.unit},
        "universe": {"companies": len(panel.companies),
                     "with_posts": int((np.nansum(panel.stories[:, panel.period], axis=1) > 0).sum()),
                     "posts_without_prices": len(panel.unpriced), "market": panel.market},
        "alignment": f"posts before 16:00 {EXCHANGE_TZ} count for that day's session, at or after {CLOSE:%H:%M} for "
                     "the next; weekends and holidays roll to the next trading day of the price calendar",
        "ic": information_coefficients(panel, settings),
        "alerts": {"events": len(events), "skipped": skipped, **event_study(panel, events, settings)},
    }
    return panel, events, report


def run_signal(lake: str | Path, settings: SignalSettings) -> dict:
    """`finpulse signal`'s report (see the module docstring)."""
    require_lake(lake)
    con = connect(lake)
    try:
        return run_study(con, settings)[2]
    finally:
        con.close()


def curve(panel: Panel, events: list[tuple[int, int, str]], first: int = CURVE[0], last: int = CURVE[1]) -> list[dict]:
    """Mean CAR from `first` to each day up to `last` around the events, with its 95% band."""
    return stats.car_curve(panel.abnormal, [(c, t) for c, t, _ in events], first, last)


def _fmt(v, spec: str) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def format_report(report: dict) -> str:
    """The report as text tables (`--format table`)."""
    p, u = report["period"], report["universe"]
    unit = "stories" if p["unit"] == "story" else "posts"
    lines = [f"sessions {p['first_session']} .. {p['last_session']} ({p['sessions']}, bucket {p['bucket']}, "
             f"counting {unit}); {u['companies']} companies with prices, {u['with_posts']} with posts; "
             f"abnormal return = log return - {u['market']}",
             "", "information coefficient (mean daily Spearman IC, t, days)",
             f"{'horizon':>8}  " + "  ".join(f"{f:>24}" for f in FIELDS)]
    for h, row in report["ic"].items():
        cells = [f"{_fmt(v['ic'], '+.4f')} t={_fmt(v['t'], '+.2f')} n={v['days']}" for v in row["by_field"].values()]
        lines.append(f"{h:>8}  " + "  ".join(f"{c:>24}" for c in cells))
    a = report["alerts"]
    lines += ["", f"event study of {a['events']} alerts (CAR mean, t, n, share below -2%)"]
    for name in (k for k in a if k.startswith("car_")):
        lines.append(f"  {name}")
        w = a[name]
        rows = [("alerts", w["alerts"]), *((f"  {s}", v) for s, v in w["by_severity"].items()),
                ("all company-days", w["reference"])]
        for label, v in rows:
            lines.append(f"    {label:<18} {_fmt(v['mean'], '+.4f'):>8}  t={_fmt(v['t'], '+.2f'):>6}  n={v['n']:<7} "
                         f"below -2%: {_fmt(v['share_below_-2%'], '.1%')}")
    skipped = {k: v for k, v in a["skipped"].items() if v}
    if skipped:
        lines.append("  left out: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in skipped.items()))
    return "\n".join(lines)
