"""The negative-spike detector on small exact cases."""

import math
from datetime import datetime, timedelta, timezone

from finpulse.pipeline.spikes import Bucket, DetectorConfig, binomial_tail, detect_spikes

T0 = datetime(2026, 11, 2, tzinfo=timezone.utc)


def series(counts):
    """[(volume, negatives), ...] -> hourly buckets."""
    return [Bucket(T0 + timedelta(hours=i), v, k) for i, (v, k) in enumerate(counts)]


def test_binomial_tail_matches_direct_sums():
    assert math.isclose(binomial_tail(2, 3, 0.5), 0.5)  # P(X>=2) = (3 + 1) / 8
    assert math.isclose(binomial_tail(0, 10, 0.3), 1.0) and binomial_tail(11, 10, 0.3) == 0.0
    direct = sum(math.comb(20, i) * 0.2**i * 0.8 ** (20 - i) for i in range(12, 21))
    assert math.isclose(binomial_tail(12, 20, 0.2), direct, rel_tol=1e-9)


def test_steady_background_raises_nothing():
    assert detect_spikes(series([(40, 8)] * 48), global_share=0.2) == []


def test_a_doubling_with_volume_is_detected_at_its_bucket():
    spikes = detect_spikes(series([(40, 8)] * 24 + [(40, 24)] + [(40, 8)] * 5), global_share=0.2)
    assert len(spikes) == 1
    s = spikes[0]
    assert s.bucket_start == T0 + timedelta(hours=24)
    assert (s.volume, s.negatives, s.observed_share) == (40, 24, 0.6)
    assert abs(s.baseline_share - 0.2) < 1e-9 and s.ratio == 3.0 and s.severity == "critical"
    assert (s.window_buckets, s.channel) == (1, "share")
    assert math.isclose(s.p_value, 3 * binomial_tail(24, 40, 0.2))  # Bonferroni: windows 1 and 2, count channel


def test_small_buckets_and_small_effects_do_not_alert():
    assert detect_spikes(series([(40, 8)] * 24 + [(10, 9)]), 0.2) == []  # below min_volume
    assert detect_spikes(series([(400, 80)] * 24 + [(400, 100)]), 0.2) == []  # significant but only +5 points


def test_one_event_over_three_buckets_raises_one_alert():
    spikes = detect_spikes(series([(40, 8)] * 24 + [(40, 20), (40, 21), (40, 20)] + [(40, 8)] * 5), 0.2)
    assert len(spikes) == 1 and spikes[0].bucket_start == T0 + timedelta(hours=24)


def test_a_second_event_after_the_cooldown_alerts_again_and_baseline_skips_alerted_buckets():
    counts = [(40, 8)] * 24 + [(40, 24)] + [(40, 8)] * 10 + [(40, 24)]
    spikes = detect_spikes(series(counts), 0.2, DetectorConfig(cooldown_buckets=6))
    assert [s.bucket_start for s in spikes] == [T0 + timedelta(hours=24), T0 + timedelta(hours=35)]
    assert abs(spikes[1].baseline_share - 0.2) < 1e-9  # the first spike is not in the second's baseline


def test_cold_start_needs_history():
    assert detect_spikes(series([(40, 30)]), 0.2) == []


def test_the_simulation_is_seeded_and_scores_every_injected_spike():
    from finpulse.pipeline.simulate import simulate

    a, b = simulate(days=5, tickers=10, spikes_per_day=4, seed=3), simulate(days=5, tickers=10, spikes_per_day=4, seed=3)
    assert a == b
    assert a["buckets_tested"] == 5 * 24 * 10 and a["spikes"] > 0
    assert all(0 <= row["recall"] <= 1 for row in a["by_size"])
    # big spikes (4x the usual negative share) are always caught in their own bucket
    big = [row for row in a["by_size"] if row["size"] == 4.0]
    assert big and all(row["recall"] == 1.0 and row["median_delay_buckets"] == 0 for row in big)
