"""The negative-spike detector: a pure function over one key's bucketed sentiment counts.

For each bucket the detector weighs two kinds of evidence that negative posts went up, and
alerts when either is strong enough after a Bonferroni correction for the number of tests:

* share channel: the negative share of the last w buckets (w in `windows`, so an event spread
  over two buckets is seen as one) against a trailing baseline share = pooled negatives / posts
  of the `baseline_buckets` buckets before a `guard_buckets` gap, skipping buckets that alerted
  (an ongoing event must not raise its own bar) and shrunk toward the global share by
  `prior_posts` pseudo-posts (thin histories stay sane); one-sided exact binomial tail;
* count channel: the bucket's negative count against the same bucket of the previous
  `season_periods` periods (same hour on earlier days: day/night volume cancels out), by the
  exact conditional test for two Poisson rates (x given x + history total is binomial). Real
  bad news is a surge of negative posts, and the surge is evidence the share test ignores. A
  neutral volume surge (earnings day) also multiplies negatives, so this channel only counts
  when the share moved too: it needs the share channel's effect gates and p <= `support_alpha`.

Every alert needs volume >= `min_volume`, share >= `min_ratio` x baseline and share - baseline
>= `min_delta` (effect size, so huge buckets do not alert on tiny shifts), and the adjusted
p-value (smallest p x number of tests) <= `alpha`. After an alert the key is quiet for
`cooldown_buckets` buckets; a higher severity inside that time escalates the same event (the
returned spike is replaced by the escalated one, `revision` + 1, same `event_start`), so one
event is one alert whichever window (1 or 2 buckets) or channel carried it. Severity grades
the evidence: critical (p <= alpha/1000 and ratio >= 3), high (p <= alpha/100 or ratio >= 2.5),
else medium. docs/ALERTS.md has the labelled simulation behind the defaults.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from finpulse.pipeline.runtime.settings import DetectorConfig

SEVERITY_ORDER = {"medium": 1, "high": 2, "critical": 3}




@dataclass(frozen=True)
class Bucket:
    start: datetime
    volume: int
    negatives: int


@dataclass(frozen=True)
class Spike:
    bucket_start: datetime  # the bucket that alerted (the last of the window)
    volume: int  # posts in the window
    negatives: int
    observed_share: float
    baseline_share: float
    ratio: float
    delta: float
    z: float
    p_value: float  # Bonferroni-adjusted
    severity: str
    window_buckets: int = 1  # buckets in the tested window, ending at bucket_start
    channel: str = "share"  # "share" or "count": the evidence that carried the alert
    event_start: datetime | None = None  # first bucket of the event's first alerting window: its identity
    revision: int = 0  # escalations of the event so far


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


def count_tail(count: int, history: Sequence[int]) -> float:
    """P-value that `count` comes from the same Poisson rate as each of the `history` counts.

    Exact conditional test: given the total, the new count is Binomial(total, 1/(m+1)), so the
    uncertainty of a rate estimated from few periods is accounted for, with no rate parameter."""
    if not history:
        return 1.0
    return binomial_tail(count, count + sum(history), 1 / (len(history) + 1))


def severity(p_value: float, ratio: float, alpha: float) -> str:
    if p_value <= alpha / 1000 and ratio >= 3:
        return "critical"
    if p_value <= alpha / 100 or ratio >= 2.5:
        return "high"
    return "medium"


@dataclass(frozen=True)
class _Evidence:
    window: int
    volume: int
    negatives: int
    share: float
    ratio: float
    delta: float
    p_share: float  # raw, one window


def _share_evidence(series: Sequence[Bucket], i: int, window: int, baseline: float, cfg: DetectorConfig) -> _Evidence | None:
    """The last `window` buckets ending at i, if they pass the volume and effect-size gates."""
    if i + 1 < window:
        return None
    volume = sum(b.volume for b in series[i + 1 - window:i + 1])
    negatives = sum(b.negatives for b in series[i + 1 - window:i + 1])
    if volume < cfg.min_volume:
        return None
    share = negatives / volume
    ratio = share / baseline if baseline > 0 else math.inf
    if ratio < cfg.min_ratio or share - baseline < cfg.min_delta:
        return None
    return _Evidence(window, volume, negatives, share, ratio, share - baseline, binomial_tail(negatives, volume, baseline))


def _seasonal_history(series: Sequence[Bucket], i: int, alerted: set[int], cfg: DetectorConfig) -> list[int]:
    """Negative counts of the same phase in earlier periods, skipping buckets that alerted."""
    same_phase = (i - k * cfg.season_buckets for k in range(1, cfg.season_periods + 1))
    return [series[j].negatives for j in same_phase if j >= 0 and j not in alerted]


DEFAULT_CONFIG = DetectorConfig()


def detect_spikes(series: Sequence[Bucket], global_share: float, cfg: DetectorConfig = DEFAULT_CONFIG) -> list[Spike]:
    """Spikes in one key's series (buckets in time order, one per time step: fill gaps with
    empty buckets so the baseline, season and cool-down count real time)."""
    spikes: list[Spike] = []
    alerted: set[int] = set()
    last_alert: tuple[int, str] | None = None
    for i, bucket in enumerate(series):
        end = i - cfg.guard_buckets
        history = [series[j] for j in range(max(0, end - cfg.baseline_buckets), end) if j not in alerted]
        hist_volume = sum(b.volume for b in history)
        if hist_volume < cfg.min_history_posts:
            continue
        baseline = (sum(b.negatives for b in history) + cfg.prior_posts * global_share) / (hist_volume + cfg.prior_posts)
        candidates = [e for w in cfg.windows if (e := _share_evidence(series, i, w, baseline, cfg)) is not None]
        if not candidates:
            continue
        best = min(candidates, key=lambda e: (e.p_share, e.window))
        p_min, channel = best.p_share, "share"
        current = next((e for e in candidates if e.window == 1), None)
        if cfg.count_channel and current is not None and current.p_share <= cfg.support_alpha:
            seasonal = _seasonal_history(series, i, alerted, cfg)
            expected = sum(seasonal) / len(seasonal) if seasonal else math.inf
            if bucket.negatives >= cfg.min_count_ratio * expected and (p_count := count_tail(bucket.negatives, seasonal)) < p_min:
                p_min, channel, best = p_count, "count", current
        p_value = min(1.0, p_min * cfg.tests)
        if p_value > cfg.alpha:
            continue
        level = severity(p_value, round(best.ratio, 6), cfg.alpha)  # 0.6 / 0.2 is 2.9999999999999996
        alerted.add(i)
        escalates = False
        if last_alert is not None:
            last_i, last_level = last_alert
            if i - last_i <= cfg.cooldown_buckets:
                if SEVERITY_ORDER[level] <= SEVERITY_ORDER[last_level]:
                    last_alert = (i, last_level)  # the event goes on: extend the cool-down, no new alert
                    continue
                escalates = True  # the same event got worse: update its alert, do not add one
        z = best.delta / math.sqrt(baseline * (1 - baseline) / best.volume) if 0 < baseline < 1 else math.inf
        spike = Spike(bucket.start, best.volume, best.negatives, round(best.share, 4), round(baseline, 4),
                      round(best.ratio, 3), round(best.delta, 4), round(z, 2), p_value, level, best.window, channel,
                      event_start=series[i + 1 - best.window].start)
        if escalates:
            previous = spikes.pop()
            spike = dataclasses.replace(spike, event_start=previous.event_start, revision=previous.revision + 1)
        spikes.append(spike)
        last_alert = (i, level)
    return spikes
