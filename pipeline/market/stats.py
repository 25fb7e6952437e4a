"""The signal's statistics on small matrices: companies x sessions (numpy only, no lake). Pure.

Inputs are float matrices with one row per company and one column per trading session, NaN where
there is no value (no stories that day, no price, a gap). The heavy part, turning a million posts
into these matrices, is SQL (study.py); what is left is a few thousand small vectors.

Information coefficient (IC): for each session t, the Spearman rank correlation across companies
between a signal on t and the abnormal return on session t + h (h = 0: the same session, i.e. the
posts up to its close; h = 1: the next session's return, which a trader could still take). The
summary is the mean over sessions with its t-statistic, mean / (sd / sqrt(days)): each session's
IC is one observation, which is how a cross-sectional signal is judged (Grinold & Kahn's IC;
Fama-MacBeth's t). Returns at each horizon are one session's, not cumulative, so the daily ICs of
one horizon do not share returns; persistence of sentiment itself can still make neighbouring ICs
alike, so read a t near 2 with care.

Event study: the cumulative abnormal return (CAR) over a window of sessions around each event
(an alert: day 0 is its session), averaged over events, with the cross-sectional t-statistic
(MacKinlay 1997) and the share of events whose CAR fell below -2%; the same figures over all
company-days are the reference the alerts must beat.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

MIN_NAMES = 5  # companies a session's cross-section needs before its IC counts
DROP = -0.02  # the event study's "share below": CAR under -2%


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (what Spearman's rho needs)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # a value's tied run covers ranks ends - count + 1 .. ends
    return ((ends - counts + 1 + ends) / 2.0)[inverse.reshape(-1)]


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rho of two equal-length vectors without NaN; None when undefined (n < 3 or a
    constant vector)."""
    if len(x) < 3:
        return None
    rx, ry = average_ranks(np.asarray(x, float)), average_ranks(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum()) * float((ry * ry).sum()))
    return None if denom == 0 else float((rx * ry).sum() / denom)


@dataclass(frozen=True)
class Mean:
    """A mean with its t-statistic (None below two observations or with zero spread)."""

    mean: float | None
    t: float | None
    n: int
    sd: float | None = None


def mean_t(values: Iterable[float]) -> Mean:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], float)
    n = len(v)
    if n == 0:
        return Mean(None, None, 0)
    mean = float(v.mean())
    if n < 2:
        return Mean(mean, None, n)
    sd = float(v.std(ddof=1))
    return Mean(mean, None if sd == 0 else mean / (sd / math.sqrt(n)), n, sd)


def daily_ic(signal: np.ndarray, returns: np.ndarray, horizon: int, min_names: int = MIN_NAMES) -> np.ndarray:
    """IC of each session t between signal[:, t] and returns[:, t + horizon] (NaN where fewer than
    `min_names` companies have both, or a side is constant)."""
    sessions = signal.shape[1]
    out = np.full(sessions, np.nan)
    for t in range(max(0, sessions - horizon)):
        x, y = signal[:, t], returns[:, t + horizon]
        ok = ~(np.isnan(x) | np.isnan(y))
        if ok.sum() < min_names:
            continue
        rho = spearman(x[ok], y[ok])
        if rho is not None:
            out[t] = rho
    return out


def ic_summary(signal: np.ndarray, returns: np.ndarray, horizon: int, min_names: int = MIN_NAMES,
               sessions: slice | None = None) -> dict:
    """{"ic": mean daily IC, "t": its t-statistic, "days": sessions with an IC} (over `sessions` only)."""
    ics = daily_ic(signal, returns, horizon, min_names)
    m = mean_t(ics[sessions] if sessions is not None else ics)
    return {"ic": None if m.mean is None else round(m.mean, 4), "t": None if m.t is None else round(m.t, 2),
            "days": m.n}


def window_sums(ar: np.ndarray, first: int, last: int) -> np.ndarray:
    """out[c, t] = ar[c, t + first] + ... + ar[c, t + last]: the CAR of the window around each
    company-day; NaN where any of its sessions is missing or outside the calendar."""
    companies, sessions = ar.shape
    out = np.full((companies, sessions), np.nan)
    for t in range(sessions):
        lo, hi = t + first, t + last
        if lo < 0 or hi >= sessions:
            continue
        out[:, t] = ar[:, lo:hi + 1].sum(axis=1)  # NaN anywhere in the window stays NaN
    return out


def car_stats(cars: Sequence[float] | np.ndarray, drop: float = DROP) -> dict:
    """Mean CAR, its t-statistic, events and the share below `drop` (NaN CARs left out)."""
    v = np.asarray(cars, float)
    v = v[~np.isnan(v)]
    m = mean_t(v)
    return {"mean": None if m.mean is None else round(m.mean, 5), "t": None if m.t is None else round(m.t, 2),
            "n": m.n, "share_below_-2%": None if not m.n else round(float((v < drop).mean()), 4)}


def car_curve(ar: np.ndarray, events: Sequence[tuple[int, int]], first: int = -5, last: int = 10,
              z: float = 1.96) -> list[dict]:
    """Mean CAR from day `first` to each day k <= `last` around events (company row, session
    column), with a z-band of the mean; events missing a session up to k drop out from k on."""
    companies, sessions = ar.shape
    paths = []
    for c, t in events:
        path = np.full(last - first + 1, np.nan)
        for i, k in enumerate(range(first, last + 1)):
            if 0 <= t + k < sessions:
                path[i] = ar[c, t + k]
        paths.append(np.cumsum(path))  # NaN propagates: a path stops at its first missing session
    out = []
    for i, k in enumerate(range(first, last + 1)):
        m = mean_t(p[i] for p in paths)
        half = None if m.sd is None or m.n < 2 else z * m.sd / math.sqrt(m.n)
        out.append({"day": k, "mean": m.mean, "lower": None if half is None or m.mean is None else m.mean - half,
                    "upper": None if half is None or m.mean is None else m.mean + half, "n": m.n})
    return out
