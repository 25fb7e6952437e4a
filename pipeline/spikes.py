"""The negative-spike detector: a pure function over one key's bucketed sentiment counts.

For each bucket with enough posts, the negative share is compared with a trailing baseline:

* baseline share = pooled negatives / posts over the previous `baseline_buckets` buckets,
  skipping buckets that themselves alerted (an ongoing event must not raise its own bar) and
  shrunk toward the global share by `prior_posts` pseudo-posts (thin histories stay sane);
* an alert needs volume >= `min_volume`, share >= `min_ratio` x baseline, share - baseline
  >= `min_delta`, and a one-sided exact binomial tail P(X >= negatives) <= `alpha`;
* after an alert the key is quiet for `cooldown_buckets` buckets unless severity rises, so one
  event raises one alert;
* severity grades the evidence: critical (p <= alpha/1000 and ratio >= 3), high (p <= alpha/100
  or ratio >= 2.5), else medium.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

SEVERITY_ORDER = {"medium": 1, "high": 2, "critical": 3}


@dataclass(frozen=True)
class DetectorConfig:
    baseline_buckets: int = 24
    min_history_posts: int = 30  # below this much baseline volume, no alert (cold start)
    min_volume: int = 20
    min_ratio: float = 1.5
    min_delta: float = 0.10
    alpha: float = 1e-4
    cooldown_buckets: int = 6
    prior_posts: float = 20.0


@dataclass(frozen=True)
class Bucket:
    start: datetime
    volume: int
    negatives: int


@dataclass(frozen=True)
class Spike:
    bucket_start: datetime
    volume: int
    negatives: int
    observed_share: float
    baseline_share: float
    ratio: float
    delta: float
    z: float
    p_value: float
    severity: str


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (summed in log space)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def severity(p_value: float, ratio: float, alpha: float) -> str:
    if p_value <= alpha / 1000 and ratio >= 3:
        return "critical"
    if p_value <= alpha / 100 or ratio >= 2.5:
        return "high"
    return "medium"


def detect_spikes(series: Sequence[Bucket], global_share: float, cfg: DetectorConfig = DetectorConfig()) -> list[Spike]:
    """Spikes in one key's series (buckets in time order, empty buckets may be omitted)."""
    spikes: list[Spike] = []
    alerted: set[int] = set()
    last_alert: tuple[int, str] | None = None
    for i, bucket in enumerate(series):
        history = [series[j] for j in range(max(0, i - cfg.baseline_buckets), i) if j not in alerted]
        hist_volume = sum(b.volume for b in history)
        if bucket.volume < cfg.min_volume or hist_volume < cfg.min_history_posts:
            continue
        hist_neg = sum(b.negatives for b in history)
        baseline = (hist_neg + cfg.prior_posts * global_share) / (hist_volume + cfg.prior_posts)
        share = bucket.negatives / bucket.volume
        ratio = share / baseline if baseline > 0 else math.inf
        delta = share - baseline
        if ratio < cfg.min_ratio or delta < cfg.min_delta:
            continue
        p_value = binomial_tail(bucket.negatives, bucket.volume, baseline)
        if p_value > cfg.alpha:
            continue
        level = severity(p_value, round(ratio, 6), cfg.alpha)  # 0.6 / 0.2 is 2.9999999999999996
        alerted.add(i)
        if last_alert is not None:
            last_i, last_level = last_alert
            if i - last_i <= cfg.cooldown_buckets and SEVERITY_ORDER[level] <= SEVERITY_ORDER[last_level]:
                last_alert = (i, last_level)  # the event goes on: extend the cool-down, no new alert
                continue
        z = delta / math.sqrt(baseline * (1 - baseline) / bucket.volume) if 0 < baseline < 1 else math.inf
        spikes.append(Spike(bucket.start, bucket.volume, bucket.negatives, round(share, 4), round(baseline, 4),
                            round(ratio, 3), round(delta, 4), round(z, 2), p_value, level))
        last_alert = (i, level)
    return spikes
