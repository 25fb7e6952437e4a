"""What the analyst selected, turned into one parameterised SQL predicate.

Every value the user types or picks travels as a DuckDB parameter, never as SQL text, so a
filter such as `'; DROP TABLE posts; --` is just a string that matches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

# Range presets are relative to the newest post in the lake, not to the wall clock: a
# backfilled archive from 2019 should open on its last week, not on an empty chart.
PRESETS: dict[str, timedelta | None] = {
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "Last year": timedelta(days=365),
    "All": None,
}

# Bucket widths the charts may use, smallest first (DuckDB interval strings).
BUCKETS: list[tuple[str, timedelta]] = [
    ("1 minute", timedelta(minutes=1)),
    ("5 minutes", timedelta(minutes=5)),
    ("15 minutes", timedelta(minutes=15)),
    ("1 hour", timedelta(hours=1)),
    ("6 hours", timedelta(hours=6)),
    ("1 day", timedelta(days=1)),
    ("7 days", timedelta(days=7)),
]

MAX_BUCKETS = 180


def bucket_for_span(span: timedelta, max_buckets: int = MAX_BUCKETS) -> str:
    """The finest bucket that keeps a chart of `span` under `max_buckets` bars."""
    for name, width in BUCKETS:
        if span / width <= max_buckets:
            return name
    return BUCKETS[-1][0]


def preset_range(preset: str, oldest: datetime, newest: datetime) -> tuple[datetime, datetime]:
    """[start, end) for a preset; `end` is just past the newest post so it is included."""
    end = newest + timedelta(microseconds=1)
    length = PRESETS[preset]
    return (oldest if length is None else max(oldest, end - length)), end


@dataclass(frozen=True)
class Filters:
    """One hashable selection; the cache keys on it together with the lake's version."""

    start: datetime
    end: datetime
    tickers: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    sentiments: tuple[str, ...] = ()
    text: str = ""
    ids: tuple[str, ...] = field(default=())

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    @property
    def bucket(self) -> str:
        return bucket_for_span(self.span)

    def previous(self) -> Filters:
        """The same selection over the equally long period just before, for "change" figures."""
        return replace(self, start=self.start - self.span, end=self.start)


def where(f: Filters, *, time: bool = True, tickers: bool = True) -> tuple[str, list]:
    """(SQL predicate over `posts`, parameters). `tickers=False` drops the ticker filter, for
    queries that group by ticker themselves and should still see every company."""
    clauses: list[str] = []
    params: list = []
    if time:
        clauses.append("published_at >= ? AND published_at < ?")
        params += [f.start, f.end]
    if tickers and f.tickers:
        clauses.append("list_has_any(tickers, ?::VARCHAR[])")
        params.append(list(f.tickers))
    for column, values in (("topic", f.topics), ("source", f.sources), ("kind", f.kinds), ("sentiment", f.sentiments)):
        if values:
            clauses.append(f"{column} = ANY(?::VARCHAR[])")
            params.append(list(values))
    if f.text.strip():
        # contains() matches the literal string: no LIKE wildcards for users to trip over.
        clauses.append("(contains(lower(text), lower(?)) OR contains(lower(coalesce(title, '')), lower(?)))")
        params += [f.text.strip(), f.text.strip()]
    if f.ids:
        clauses.append("id = ANY(?::VARCHAR[])")
        params.append(list(f.ids))
    return (" AND ".join(clauses) or "true"), params
