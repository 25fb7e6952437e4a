"""Which trading session a post (or an alert) counts for. Pure.

A session's return is close to close: from 16:00 America/New_York on the previous trading day to
16:00 on its own day. So a time counts for the session whose return it can still move:

1. take the time in New York (daylight saving included: 16:00 there is 20:00 UTC in summer and
   21:00 UTC in winter);
2. before 16:00, the candidate is that local date; at or after 16:00 (the close itself included),
   the next date;
3. the session is the first day of the price calendar (the days the `prices` table holds) on or
   after the candidate: a Saturday post, or one on a holiday such as July 4th, counts for the next
   day the market trades. Early-close days (13:00) are treated as closing at 16:00.

Times after the calendar's last day have no session yet and are left out. `session_sql` is the same
rule in DuckDB's SQL (with an ASOF join on the calendar), for the study's aggregation; the tests check
that both give the same answers on the boundaries.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

EXCHANGE_TZ = "America/New_York"
CLOSE = time(16, 0)


def candidate_day(ts: datetime) -> date:
    """The exchange-local date whose close a time precedes (step 1 and 2); naive means UTC."""
    ts = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    local = ts.astimezone(ZoneInfo(EXCHANGE_TZ))
    return local.date() + timedelta(days=1) if local.time() >= CLOSE else local.date()


def session_day(ts: datetime, calendar: Sequence[date]) -> date | None:
    """The trading session of `ts` on a sorted calendar, or None after its last day."""
    i = bisect.bisect_left(calendar, candidate_day(ts))
    return calendar[i] if i < len(calendar) else None


def candidate_sql(column: str) -> str:
    """SQL: `candidate_day` of a TIMESTAMPTZ column (needs DuckDB's ICU, built in)."""
    local = f"timezone('{EXCHANGE_TZ}', {column})"
    return (f"(CAST({local} AS DATE) + CASE WHEN CAST({local} AS TIME) >= TIME '{CLOSE:%H:%M}' "
            f"THEN 1 ELSE 0 END)")


def session_sql(source: str, column: str, calendar: str = "calendar") -> str:
    """SQL: every row of `source` with its session in column `session` (rows after the calendar's
    last day drop out, as in `session_day`). `calendar` is a relation with one column `day`."""
    return f"""(SELECT s.* EXCLUDE (_candidate), c.day AS session
               FROM (SELECT *, {candidate_sql(column)} AS _candidate FROM {source}) s
               ASOF JOIN {calendar} c ON s._candidate <= c.day)"""
