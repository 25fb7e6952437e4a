"""The negative-spike detector on small exact cases."""

import math
from datetime import datetime, timedelta, timezone

from finpulse.pipeline.alerts.detector import Bucket, binomial_tail, count_tail, detect_spikes
from finpulse.pipeline.runtime.settings import DetectorConfig

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


def test_count_tail_is_the_conditional_binomial_test_for_two_poisson_rates():
    assert math.isclose(count_tail(20, [4, 4]), binomial_tail(20, 28, 1 / 3))
    assert count_tail(5, []) == 1.0  # no history: no evidence
    assert math.isclose(count_tail(3, [0]), 0.5**3)  # all 3 of 3 posts landed in the new bucket


def test_a_surge_of_negative_posts_alerts_on_the_count_channel_when_the_share_test_alone_is_short():
    counts = [(20, 4)] * 48 + [(50, 20)]  # share doubled and 5x the usual negatives
    spikes = detect_spikes(series(counts), 0.2)
    assert [(s.bucket_start, s.channel, s.window_buckets, s.volume, s.negatives) for s in spikes] == [
        (T0 + timedelta(hours=48), "count", 1, 50, 20)]
    assert math.isclose(spikes[0].p_value, 3 * count_tail(20, [4, 4]))
    assert 3 * binomial_tail(20, 50, 0.2) > DetectorConfig().alpha  # the share test alone would miss it
    assert detect_spikes(series(counts), 0.2, DetectorConfig(count_channel=False)) == []


def test_a_neutral_volume_surge_does_not_alert_however_many_negatives_it_brings():
    assert detect_spikes(series([(20, 4)] * 48 + [(100, 20), (100, 20)]), 0.2) == []  # 5x negatives, share unchanged


def test_the_count_channel_compares_with_the_same_hour_on_earlier_days():
    day = [(50, 10) if h == 12 else (20, 4) for h in range(24)]  # noon is always busy
    at_noon = detect_spikes(series(day * 2 + day[:12] + [(50, 20)]), 0.2)
    at_one = detect_spikes(series(day * 2 + day[:13] + [(50, 20)]), 0.2)
    assert at_noon == []  # 20 negatives is twice what noon usually brings: not enough on its own
    assert [(s.bucket_start, s.channel) for s in at_one] == [(T0 + timedelta(hours=61), "count")]  # 5x what 1 pm brings


def test_an_event_over_two_buckets_alerts_on_the_two_bucket_window_at_its_second_bucket():
    counts = [(30, 6)] * 48 + [(30, 13), (30, 13)] + [(30, 6)] * 3
    assert 3 * binomial_tail(13, 30, 0.2) > DetectorConfig().alpha  # neither bucket is enough alone
    spikes = detect_spikes(series(counts), 0.2)
    assert [(s.bucket_start, s.window_buckets, s.volume, s.negatives, s.channel) for s in spikes] == [
        (T0 + timedelta(hours=49), 2, 60, 26, "share")]
    assert math.isclose(spikes[0].p_value, 3 * binomial_tail(26, 60, 0.2))  # baseline skips the guard bucket
    assert detect_spikes(series(counts), 0.2, DetectorConfig(windows=(1,))) == []


def test_without_the_guard_bucket_an_events_first_bucket_raises_the_bar_for_its_second():
    counts = [(30, 6)] * 72 + [(30, 13), (30, 15)]  # the first bucket is short of alpha, the second is not
    cfg = DetectorConfig(windows=(1,), count_channel=False)
    guarded, unguarded = detect_spikes(series(counts), 0.2, cfg), detect_spikes(series(counts), 0.2, DetectorConfig(windows=(1,), count_channel=False, guard_buckets=0))
    assert [(s.bucket_start, s.baseline_share) for s in guarded] == [(T0 + timedelta(hours=73), 0.2)]
    assert [(s.bucket_start, s.baseline_share) for s in unguarded] == [(T0 + timedelta(hours=73), round((6 * 71 + 13 + 0.2 * 20) / (30 * 72 + 20), 4))]
    assert unguarded[0].p_value > guarded[0].p_value


def test_history_buckets_covers_the_baseline_windows_and_season():
    assert DetectorConfig().history_buckets == max(72 + 1 + 2 - 1, 24 * 7)
    assert DetectorConfig(count_channel=False).history_buckets == 74


def test_the_simulation_is_seeded_labels_by_what_was_observed_and_scores_decoys_as_false_alarms():
    from finpulse.pipeline.alerts.simulate import TARGET_POSTS, TARGET_RATIO, make_world, score, simulate

    a, b = simulate(days=5, tickers=10, spikes_per_day=4, seed=3), simulate(days=5, tickers=10, spikes_per_day=4, seed=3)
    assert a == b
    assert a["buckets_tested"] == 5 * 24 * 10 and a["spikes_labelled"] > 0 and a["decoys_injected"] > 0
    assert all(0 <= row["recall"] <= 1 for row in a["by_size"])
    world = make_world(days=5, tickers=10, spikes_per_day=4, seed=3)
    for e in world.events:
        qualifying = world.qualifying(e)
        buckets = world.series[e.ticker]
        assert qualifying == [h for h in range(e.start, e.start + e.length)
                              if buckets[h].volume >= TARGET_POSTS and buckets[h].negatives / buckets[h].volume >= TARGET_RATIO * world.shares[e.ticker]]
    assert score(world)["spikes_labelled"] == sum(1 for e in world.events if not e.decoy and world.qualifying(e))
    # a detector that flags every bucket with volume catches everything and pays for it in false alarms
    noisy = score(world, DetectorConfig(alpha=1.0, min_ratio=0.0, min_delta=-1.0, cooldown_buckets=0))
    assert noisy["recall_doubling_20_posts"] == 1.0 and noisy["false_alarms_per_day"] > 100 and noisy["false_alarms_on_decoys"] > 0
