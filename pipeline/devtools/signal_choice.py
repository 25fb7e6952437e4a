"""Choosing alert settings by what follows them in prices, and a synthetic universe to rehearse it on.

`compare_detectors` runs the alert detector with its current defaults and with alternatives (window,
volume floor, bucket, counting stories or posts) over a lake that holds prices, and reads the event
study of each (market/study.py): an alternative is CHOSEN on one period (the most negative t of the
mean CAR over [+1, +5]) and its figures are REPORTED on another, never on the period it was chosen
on, beside the defaults' on that same period. Alerts are evaluated, not recorded: the lake's
`alerts` table is left alone.

`synthetic_universe` writes such a lake when no real prices are at hand: S&P companies of the
gazetteer on a weekday calendar with US holidays, background stories around the clock, and two
kinds of burst:

* news: 6 to 30 (`burst`) distinct negative stories over 20 to 150 minutes (`burst_minutes`) of a
  trading day, after which the company's abnormal return is planted in proportion to the burst's
  size: on average `reaction` on the session of the burst and `drift` spread over the three
  sessions after it (so CAR[+1,+5] is `drift` on average, and CAR[-1,+1] `reaction` + `drift` / 3).
  Small, slow bursts are hard to tell from noise, which is what makes window, floor and bucket
  matter;
* copies: one negative story copied `copies` times within 20 to 150 minutes (retweets,
  syndication), with no effect on the price: counting posts alerts on them, counting stories
  does not.

Its figures say only that the procedure finds what was planted. They are no evidence about real
markets, and the detector's defaults must not be changed on them: run `finpulse compare-detectors
--lake L` on a lake with real posts and real prices for that.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from finpulse.pipeline.lake import tables
from finpulse.pipeline.market.sessions import EXCHANGE_TZ

_HOLIDAYS = ("2025-01-01 2025-01-20 2025-02-17 2025-04-18 2025-05-26 2025-06-19 2025-07-04 2025-09-01 2025-11-27 "
             "2025-12-25 2026-01-01 2026-01-19 2026-02-16 2026-04-03 2026-05-25 2026-06-19 2026-07-03 2026-09-07 "
             "2026-11-26 2026-12-25")
HOLIDAYS = frozenset(date.fromisoformat(d) for d in _HOLIDAYS.split(" "))
SCORES = {"negative": -0.7, "neutral": 0.0, "positive": 0.6}


def trading_days(start: date, sessions: int) -> list[date]:
    """`sessions` weekdays from `start` that are not NYSE holidays (2025-2026 listed)."""
    out: list[date] = []
    day = start
    while len(out) < sessions:
        if day.weekday() < 5 and day not in HOLIDAYS:
            out.append(day)
        day += timedelta(days=1)
    return out


@dataclass(frozen=True)
class Burst:
    company: str
    at: datetime  # UTC
    kind: str  # "news" (priced) or "copies" (not)
    size: int  # posts in the burst


@dataclass(frozen=True)
class Universe:
    companies: list[str]
    calendar: list[date]
    bursts: list[Burst]
    posts: int


def _close(day: date) -> datetime:
    return datetime.combine(day, time(16), ZoneInfo(EXCHANGE_TZ)).astimezone(timezone.utc)


def synthetic_universe(lake: str | Path, companies: int = 20, sessions: int = 180, start: date = date(2025, 1, 6),
                       stories_per_hour: float = 1.0, news_per_company: float = 4.0, copies_per_company: float = 3.0,
                       burst: tuple[int, int] = (6, 30), burst_minutes: tuple[float, float] = (20.0, 150.0),
                       copies: int = 40, reaction: float = -0.01, drift: float = -0.03,
                       noise: float = 0.015, market_noise: float = 0.01, seed: int = 7,
                       shuffle_effects: bool = False, benchmark: str | None = "SPY") -> Universe:
    """Write posts and prices of a synthetic universe with a planted effect into `lake` (see the
    module docstring). `shuffle_effects`: plant the returns on random sessions instead of after
    the news bursts (what a study must then find: nothing). `benchmark`: also load the market
    factor itself under this name (kind "benchmark"), for `finpulse signal --benchmark`."""
    from finpulse.pipeline.enrich.companies import load_gazetteer
    from finpulse.pipeline.market.load import load_prices
    from finpulse.pipeline.market.prices import PriceFile
    from finpulse.pipeline.market.sessions import session_day
    from finpulse.schemas.arrow import PRICES_SCHEMA

    rng = np.random.default_rng(seed)
    gaz = load_gazetteer()
    keys = sorted(c.key for c in gaz.companies.values() if c.sp500)[:companies]
    calendar = trading_days(start, sessions)
    t0, t1 = _close(calendar[0]) - timedelta(days=1), _close(calendar[-1])
    hours = (t1 - t0).total_seconds() / 3600
    rows: dict[str, list] = {k: [] for k in ("id", "at", "company", "sentiment", "story", "relevance")}

    def add(company: str, at: datetime, sentiment: str, story: str | None = None) -> None:
        pid = f"syn-{len(rows['id'])}"
        rows["id"].append(pid)
        rows["at"].append(at)
        rows["company"].append(company)
        rows["sentiment"].append(sentiment)
        rows["story"].append(story or pid)
        rows["relevance"].append(1.0 if len(rows["id"]) % 3 else 0.5)  # a passing mention now and then

    labels = np.array(["negative", "neutral", "positive"])
    for key in keys:  # background: Poisson stories around the clock, 20% negative
        n = rng.poisson(stories_per_hour * hours)
        offsets = np.sort(rng.uniform(0, hours * 3600, n))
        sentiments = labels[rng.choice(3, n, p=[0.2, 0.5, 0.3])]
        for off, s in zip(offsets, sentiments, strict=True):
            add(key, t0 + timedelta(seconds=float(off)), str(s))
    bursts: list[Burst] = []
    for key in keys:
        taken: list[int] = []  # a company's news sessions, 8 apart: one event's window holds no other's effect
        for kind, rate in (("news", news_per_company), ("copies", copies_per_company)):
            for _ in range(rng.poisson(rate)):
                t = int(rng.integers(10, len(calendar) - 8))  # history before, returns after
                if kind == "news":
                    if any(abs(t - u) < 8 for u in taken):
                        continue
                    taken.append(t)
                day = calendar[t]
                at = _close(day) - timedelta(hours=float(rng.uniform(1.5, 6.0)))
                size = int(rng.integers(burst[0], burst[1] + 1)) if kind == "news" else copies
                bursts.append(Burst(key, at, kind, size))
                first = None
                minutes = float(rng.uniform(*burst_minutes))
                for _ in range(size):
                    when = at + timedelta(minutes=float(rng.uniform(0, minutes)))
                    add(key, when, "negative", story=None if kind == "news" else first)
                    first = first or rows["id"][-1]
    n = len(rows["id"])
    published = rows["at"]
    order = np.argsort(np.array([p.timestamp() for p in published]))
    copies_seen: dict[str, int] = {}
    seen = []
    for i in order:
        copies_seen[rows["story"][i]] = copies_seen.get(rows["story"][i], 0) + 1
        seen.append(copies_seen[rows["story"][i]])
    seen_by_row = np.empty(n, dtype=int)
    seen_by_row[order] = seen
    sentiment = rows["sentiment"]
    score = [SCORES[s] for s in sentiment]
    probs = [{"negative": 0.8 if s == "negative" else 0.1, "neutral": 0.8 if s == "neutral" else 0.1,
              "positive": 0.8 if s == "positive" else 0.1} for s in sentiment]
    cols = {
        "id": rows["id"], "kind": ["social"] * n, "source": ["synthetic"] * n, "published_at": published,
        "ingested_at": [p + timedelta(seconds=1) for p in published], "title": [None] * n,
        "text": [f"${c} synthetic post" for c in rows["company"]], "url": [None] * n, "author": [None] * n,
        "lang": ["en"] * n, "tickers": [[c] for c in rows["company"]], "sentiment": sentiment,
        "sentiment_score": score, "sentiment_probs": probs, "topic": ["Markets"] * n, "topic_score": [0.9] * n,
        "entities": [[]] * n,
        "entity_sentiment": [[{"ticker": c, "text": f"${c}", "start": 0, "end": len(c) + 1, "sentiment": s,
                               "score": sc, "probs": pr, "relevance": r}]
                             for c, s, sc, pr, r in zip(rows["company"], sentiment, score, probs, rows["relevance"],
                                                        strict=True)],
        "model_version": ["synthetic"] * n, "kafka_topic": [None] * n, "kafka_partition": [None] * n,
        "kafka_offset": [None] * n, "companies": [[c] for c in rows["company"]], "story_id": rows["story"],
        "copies_seen": seen_by_row.tolist(), "novelty": [1.0 / s for s in seen_by_row.tolist()],
    }
    data = pa.Table.from_pydict(cols, schema=tables.SCHEMAS["enriched"])
    data = data.append_column(tables.PARTITION, pa.array([f"{p:%Y-%m-%d}" for p in published], pa.string()))
    tables.append(lake, "enriched", data, metadata={"finpulse.op": "synthetic universe"})

    # prices: one market factor, idiosyncratic noise, and the planted effect after each news burst
    index = {d: i for i, d in enumerate(calendar)}
    market = rng.normal(0, market_noise, len(calendar))
    returns = market[None, :] + rng.normal(0, noise, (len(keys), len(calendar)))
    row = {k: i for i, k in enumerate(keys)}
    for b in bursts:
        if b.kind != "news":
            continue
        session = session_day(b.at, calendar)
        assert session is not None  # bursts are placed inside the calendar
        t = int(rng.integers(10, len(calendar) - 8)) if shuffle_effects else index[session]
        scale = b.size / (sum(burst) / 2)  # larger bursts, larger moves; `drift` on average
        returns[row[b.company], t] += reaction * scale
        returns[row[b.company], t + 1:t + 4] += drift * scale / 3
    names, kinds = list(keys), ["company"] * len(keys)
    if benchmark:
        returns = np.vstack([returns, market[None, :]])
        names.append(benchmark)
        kinds.append("benchmark")
    closes = 100 * np.exp(np.cumsum(returns, axis=1))
    loaded = datetime.now(timezone.utc)
    price_rows = {"company": [k for k in names for _ in calendar], "ticker": [k for k in names for _ in calendar],
                  "day": calendar * len(names), "close": closes.ravel().tolist(), "adjusted": [True] * closes.size,
                  "volume": [None] * closes.size, "kind": [k for k in kinds for _ in calendar],
                  "source": ["synthetic"] * closes.size, "loaded_at": [loaded] * closes.size}
    load_prices(lake, PriceFile("synthetic", closes.size, pa.Table.from_pydict(price_rows, schema=PRICES_SCHEMA)))
    return Universe(keys, calendar, bursts, n)


# -- choosing on one period, reporting on another --------------------------------------------------
ALTERNATIVES: dict[str, dict] = {
    "defaults": {},
    "window 1 bucket": {"detector": {"windows": (1,)}},
    "windows 1-3 buckets": {"detector": {"windows": (1, 2, 3)}},
    "floor 8 stories": {"min_stories": 8},
    "floor 20 stories": {"min_stories": 20},
    "bucket 30 minutes": {"bucket": "30 minutes"},
    "bucket 2 hours": {"bucket": "2 hours"},
    "count posts": {"unit": "post"},
}
CRITERION = "car_+1_+5"
MIN_EVENTS = 10


def alert_settings(change: dict):
    """AlertSettings with one alternative's changes applied to the current defaults."""
    from finpulse.pipeline.runtime.settings import AlertSettings, DetectorConfig

    detector = dataclasses.replace(DetectorConfig(), **change.get("detector", {}))
    return AlertSettings(detector=detector, **{k: v for k, v in change.items() if k != "detector"})


def compare_detectors(lake: str | Path, choose: tuple[datetime, datetime], confirm: tuple[datetime, datetime],
                      alternatives: dict[str, dict] | None = None) -> dict:
    """Each alternative's event study on the choosing and the confirming period; the one chosen on
    the first, and its figures on the second beside the defaults'."""
    from finpulse.pipeline.alerts.evaluate import evaluate
    from finpulse.pipeline.lake.query import connect
    from finpulse.pipeline.market.study import (
        SignalSettings,
        build_panel,
        event_study,
        events_from_alerts,
        period_slice,
    )

    alternatives = alternatives or ALTERNATIVES
    if choose[1] > confirm[0] and confirm[1] > choose[0]:
        raise ValueError("the choosing and the confirming period overlap; a choice must be confirmed on other days")
    con = connect(lake)
    try:
        panel = build_panel(con, SignalSettings())
    finally:
        con.close()
    criterion = f"most negative t of the alerts' mean {CRITERION} on the choosing period (>= {MIN_EVENTS} alerts)"
    out: dict = {"choose": [choose[0].isoformat(), choose[1].isoformat()],
                 "confirm": [confirm[0].isoformat(), confirm[1].isoformat()], "criterion": criterion,
                 "alternatives": {}}
    for name, change in alternatives.items():
        alerts = [(a.key_kind, a.key, a.severity, a.window_end) for a in evaluate(lake, alert_settings(change))]
        figures = {}
        for label, (since, until) in (("choose", choose), ("confirm", confirm)):
            part = dataclasses.replace(panel, period=period_slice(panel.calendar, since, until))
            events, _ = events_from_alerts(part, [a for a in alerts if since <= a[3] < until])
            settings = SignalSettings(since=since, until=until)
            study = event_study(part, events, settings)
            figures[label] = {"alerts": len(events), **{w: study[w]["alerts"] for w in study},
                              "reference": {w: study[w]["reference"] for w in study}}
        flat = {**change.get("detector", {}), **{k: v for k, v in change.items() if k != "detector"}}
        out["alternatives"][name] = {"change": {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()},
                                     **figures}
    ranked = [(v["choose"][CRITERION]["t"], name != "defaults", name) for name, v in out["alternatives"].items()
              if v["choose"]["alerts"] >= MIN_EVENTS and v["choose"][CRITERION]["t"] is not None]
    chosen = min(ranked)[2] if ranked else "defaults"  # a tie keeps the defaults
    out["chosen"] = chosen
    out["reported_on_confirm"] = {"defaults": out["alternatives"]["defaults"]["confirm"],
                                  chosen: out["alternatives"][chosen]["confirm"]}
    return out
