"""A labelled simulation for the negative-spike detector: recall, false alarms and delay.

Background per ticker: hourly volume ~ Poisson(rate x day/night seasonality), rate 10-60 posts
an hour, negative share 0.10-0.30 per ticker. Spikes are injected at random hours: the
negative share is multiplied by `size` (capped at 0.95) for 1-2 buckets, and the event brings
`surge` x the usual volume (real bad news is talked about more). A spike counts as detected if
the ticker alerts in its buckets or the bucket after; any other alert is a false alarm.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from finpulse.pipeline.spikes import Bucket, DetectorConfig, detect_spikes

T0 = datetime(2026, 1, 5, tzinfo=timezone.utc)


@dataclass(frozen=True)
class InjectedSpike:
    ticker: int
    start: int  # bucket index
    length: int
    size: float
    surge: float
    volume: int  # posts in the first spike bucket
    share: float  # negative share in the first spike bucket (observed)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def simulate(days: int = 7, tickers: int = 50, spikes_per_day: float = 4.0, sizes=(1.5, 2.0, 3.0, 4.0),
             surges=(1.0, 2.0, 3.0), seed: int = 1, cfg: DetectorConfig = DetectorConfig()) -> dict:
    rng = random.Random(seed)
    hours = days * 24
    rates = [rng.uniform(10, 60) for _ in range(tickers)]
    shares = [rng.uniform(0.10, 0.30) for _ in range(tickers)]
    planned: dict[tuple[int, int], tuple[float, float, int]] = {}
    for _ in range(int(spikes_per_day * days)):
        t, h = rng.randrange(tickers), rng.randrange(48, hours - 2)  # 2 days of history first
        if any((t, h + d) in planned for d in range(-8, 10)):
            continue
        size, surge, length = rng.choice(sizes), rng.choice(surges), rng.choice((1, 2))
        for d in range(length):
            planned[(t, h + d)] = (size, surge, d)
    spikes: list[InjectedSpike] = []
    series: dict[int, list[Bucket]] = {}
    total_vol = total_neg = 0
    for t in range(tickers):
        buckets = []
        for h in range(hours):
            season = 1.0 + 0.5 * math.sin(2 * math.pi * (h % 24 - 9) / 24)  # busy by day, quiet at night
            lam, share = rates[t] * season, shares[t]
            event = planned.get((t, h))
            if event:
                size, surge, d = event
                lam, share = lam * surge, min(0.95, share * size)
            volume = _poisson(rng, lam)
            negatives = sum(rng.random() < share for _ in range(volume))
            buckets.append(Bucket(T0 + timedelta(hours=h), volume, negatives))
            total_vol, total_neg = total_vol + volume, total_neg + negatives
            if event and event[2] == 0:
                length = 2 if (t, h + 1) in planned and planned[(t, h + 1)][2] == 1 else 1
                spikes.append(InjectedSpike(t, h, length, event[0], event[1], volume, negatives / max(1, volume)))
        series[t] = buckets
    global_share = total_neg / total_vol
    alerts = {t: {int((s.bucket_start - T0) / timedelta(hours=1)) for s in detect_spikes(series[t], global_share, cfg)}
              for t in range(tickers)}
    detected: dict[InjectedSpike, int | None] = {}
    matched: set[tuple[int, int]] = set()
    for s in spikes:
        window = range(s.start, s.start + s.length + 1)
        hits = sorted(h for h in alerts[s.ticker] if h in window)
        detected[s] = hits[0] - s.start if hits else None
        matched.update((s.ticker, h) for h in window)
    false_alarms = sum(1 for t, hs in alerts.items() for h in hs if (t, h) not in matched)
    rows = []
    for size in sizes:
        for surge in surges:
            group = [s for s in spikes if s.size == size and s.surge == surge and s.volume >= cfg.min_volume]
            if not group:
                continue
            delays = [detected[s] for s in group if detected[s] is not None]
            rows.append({"size": size, "surge": surge, "spikes": len(group), "recall": round(len(delays) / len(group), 3),
                         "median_delay_buckets": statistics.median(delays) if delays else None})
    target = [s for s in spikes if s.size >= 2 and s.volume >= cfg.min_volume]
    target_delays = [detected[s] for s in target if detected[s] is not None]
    return {
        "days": days, "tickers": tickers, "buckets_tested": days * 24 * tickers, "spikes": len(spikes),
        "false_alarms_per_day": round(false_alarms / days, 2),
        "recall_doubling_20_posts": round(len(target_delays) / len(target), 3) if target else None,
        "median_delay_buckets": statistics.median(target_delays) if target_delays else None,
        "by_size": rows,
    }
