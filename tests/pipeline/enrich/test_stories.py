"""Story de-duplication and novelty on real text, and what it does to alerts.

The feeds here are real headlines (SEntFiN, selected by tests/fixtures/make_headlines_real.py) with copies made
the way real traffic makes them (pipeline/devtools/copies.py): retweets, quotes, syndicated edits,
templated spam. Rows get their stories from the same pure index the pipeline uses, then alerts
are evaluated over a real lake.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.lakefixtures import post, write_posts

from finpulse.pipeline.alerts.evaluate import evaluate
from finpulse.pipeline.devtools.copies import copy_of, measure_dedup, retweet, spam, syndicate
from finpulse.pipeline.enrich.companies import load_gazetteer
from finpulse.pipeline.enrich.stories import StoryIndex, normalise
from finpulse.pipeline.runtime.settings import AlertSettings, StoryConfig

FIXTURES = Path(__file__).parents[2] / "fixtures"
T = datetime(2024, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def headlines(real_data) -> list[dict]:
    """480 real headlines labelled "negative" or "other" (tests/fixtures/make_headlines_real.py)."""
    return real_data.rows("headlines_real.jsonl")


@pytest.fixture(scope="module")
def negative(headlines) -> list[str]:
    return [h["text"] for h in headlines if h["label"] == "negative"]


@pytest.fixture(scope="module")
def other(headlines) -> list[str]:
    return [h["text"] for h in headlines if h["label"] == "other"]


def test_normalise_drops_retweet_prefix_links_mentions_outlet_and_case():
    assert normalise(
        "RT @trader: BREAKING: Dominion Energy CUTS outlook https://t.co/x @ceo - Reuters #stocks"
    ) == normalise("Dominion Energy cuts outlook")


def test_copies_join_the_first_report_and_novelty_falls(negative):
    index = StoryIndex()
    original = negative[0]
    rng = random.Random(3)
    got = [index.assign("first", original, T)]
    got += [index.assign(f"c{i}", copy_of(original, rng), T + timedelta(minutes=i + 1)) for i in range(5)]
    assert [a.story_id for a in got] == ["first"] * 6
    assert [a.copies_seen for a in got] == [1, 2, 3, 4, 5, 6]
    assert [a.novelty for a in got] == [1.0, 0.5, 0.333333, 0.25, 0.2, 0.166667]
    other = index.assign("other", negative[1], T + timedelta(minutes=10))
    assert (other.story_id, other.copies_seen, other.novelty) == ("other", 1, 1.0)


def test_a_replayed_id_gets_its_first_answer_and_counts_nothing(negative):
    index = StoryIndex()
    index.assign("a", negative[0], T)
    b = index.assign("b", retweet(negative[0], random.Random(1)), T + timedelta(minutes=1))
    assert index.assign("b", "anything at all", T + timedelta(hours=1)) == b
    assert index.assign("c", negative[0], T + timedelta(minutes=2)).copies_seen == 3


def test_state_is_bounded_by_the_window_and_old_stories_do_not_match(other):
    cfg = StoryConfig(window=timedelta(days=3))
    index = StoryIndex(cfg)
    for i, text in enumerate(other[:200]):  # one distinct headline an hour for 200 hours
        index.assign(f"h{i}", text, T + timedelta(hours=i))
    assert len(index) == 73  # the last 72 hours and the post at the edge, not 200
    late = index.assign("late", other[0], T + timedelta(hours=200))
    assert late.story_id == "late"  # its first report is 8 days old: a new story


def _feed(texts: list[str], n_originals: int, seed: int) -> list[tuple[str, str, datetime]]:
    """Real headlines, each followed within hours by 0-3 copies, in time order."""
    rng = random.Random(seed)
    feed = []
    for i, text in enumerate(texts[:n_originals]):
        t = T + timedelta(minutes=7 * i)
        feed.append((f"o{i}", text, t))
        feed += [
            (f"o{i}c{j}", copy_of(text, rng), t + timedelta(minutes=rng.randrange(1, 300)))
            for j in range(rng.randrange(4))
        ]
    return sorted(feed, key=lambda r: (r[2], r[0]))


def test_a_restart_that_restores_committed_rows_and_replays_the_rest_gives_the_same_ids(negative, other):
    """The crash contract in pure form: commit the first 300 rows, lose the next 40 in flight,
    rebuild from what was committed (any order), replay from row 300: same ids, same counts."""
    feed = _feed(negative + other, 300, seed=5)
    straight = StoryIndex()
    expected = [straight.assign(rid, text, t) for rid, text, t in feed]
    crashed = StoryIndex()
    for rid, text, t in feed[:340]:
        crashed.assign(rid, text, t)  # rows 300..339 were assigned, then the process died uncommitted
    committed = [
        (rid, t, text, a.story_id, a.copies_seen) for (rid, text, t), a in zip(feed[:300], expected[:300], strict=True)
    ]
    restarted = StoryIndex()
    restarted.restore(reversed(committed))
    replayed = [restarted.assign(rid, text, t) for rid, text, t in feed[300:]]
    assert replayed == expected[300:]
    assert sum(a.copies_seen > 1 for a in expected[300:]) > 50  # the replay really meets copies


def test_dedup_precision_and_recall_on_copies_of_real_headlines(headlines):
    """Floors measured on 480 real headlines x 2 copies each (docs/ALERTS.md has the full figures)."""
    got = measure_dedup([h["text"] for h in headlines], copies_per_text=2, seed=11)
    print(got)
    assert got["copies"] == 960
    assert got["recall"] >= 0.93 and got["precision"] >= 0.97


# -- alerts on real text ----------------------------------------------------------------------
def _lake(tmp_path: Path, burst: list[tuple[str, str]], negative: list[str], other: list[str],
          company_tickers=("D",)) -> Path:
    """48 hours of background about one company (6 distinct real headlines an hour, 1 in 6
    negative), then `burst` = [(text, sentiment)] in hour 48. Stories assigned in time order
    by the pipeline's own index; company keys from the gazetteer."""
    rng = random.Random(7)
    rows, others, negatives = [], iter(other * 2), iter(negative[60:] * 5)
    gaz = load_gazetteer()
    for hour in range(48):
        for j in range(6):
            negative = j == 0
            text = next(negatives) if negative else next(others)
            tickers = (company_tickers[(hour + j) % len(company_tickers)],)
            rows.append(
                post(
                    f"bg-{hour}-{j}",
                    hour * 60 + j * 9 + 1,
                    "negative" if negative else "neutral",
                    tickers,
                    source=rng.choice(["reuters", "twitter", "stocktwits"]),
                    text=f"{text} (#{hour}-{j})",
                )
            )
    for k, (text, sentiment) in enumerate(burst):
        rows.append(
            post(
                f"burst-{k}",
                48 * 60 + 1 + k * 50 / max(1, len(burst)),
                sentiment,
                (company_tickers[k % len(company_tickers)],),
                source=rng.choice(["twitter", "stocktwits", "reuters"]),
                text=text,
            )
        )
    rows.sort(key=lambda r: (r["published_at"], r["id"]))
    index = StoryIndex()
    for r in rows:
        a = index.assign(r["id"], r["text"], r["published_at"])
        r.update(
            story_id=a.story_id, copies_seen=a.copies_seen, novelty=a.novelty, companies=gaz.company_keys(r["tickers"])
        )
    write_posts(tmp_path, rows)
    return tmp_path


def _copies(text: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [text] + [retweet(text, rng) if i % 2 else syndicate(text, rng) for i in range(n - 1)]


def test_50_copies_of_one_negative_post_raise_no_alert(tmp_path, negative, other):
    lake = _lake(tmp_path, [(t, "negative") for t in _copies(negative[0], 50, seed=1)], negative, other)
    assert evaluate(lake, AlertSettings()) == []
    # the same lake counted post by post (the old behaviour) alerts: the test can fail
    assert [a.key for a in evaluate(lake, AlertSettings(unit="post"))] == ["D"]


def test_50_distinct_negative_posts_about_the_company_raise_one_alert_that_counts_them(tmp_path, negative, other):
    lake = _lake(tmp_path, [(t, "negative") for t in negative[:50]], negative, other)
    [alert] = evaluate(lake, AlertSettings())
    assert (alert.key_kind, alert.key, alert.window_start) == ("company", "D", T0_48())
    assert alert.stories == 50 and alert.posts == 50 and alert.sources == 3
    assert alert.negatives >= 50 and alert.unit == "story"


def test_a_real_negative_burst_diluted_by_60_spam_copies_is_still_found(tmp_path, negative, other):
    """13 distinct real negative headlines and 60 copies of a neutral promotion carrying the ticker:
    counted post by post the spam dilutes the share below the bar; counted by story it does not."""
    rng = random.Random(2)
    burst = [(t, "negative") for t in negative[:13]] + [(spam("D", rng), "neutral") for _ in range(60)]
    rng.shuffle(burst)
    lake = _lake(tmp_path, burst, negative, other)
    [alert] = evaluate(lake, AlertSettings())
    assert alert.key == "D" and alert.window_end == T0_48() + timedelta(hours=1)
    # the 13, plus hour 47's one background negative when the 2-bucket window carried the alert
    assert alert.stories == 13 + (alert.window_start < T0_48())
    assert alert.posts == alert.stories  # the spam is neutral: none of it stands behind the alert
    assert evaluate(lake, AlertSettings(unit="post")) == []


def test_posts_under_fb_and_meta_are_one_company_and_one_alert(tmp_path, negative, other):
    lake = _lake(tmp_path, [(t, "negative") for t in negative[:30]], negative, other, company_tickers=("FB", "META"))
    alerts = evaluate(lake, AlertSettings())
    assert [(a.key, a.stories) for a in alerts] == [("META", 30)]
    # keyed by raw ticker, the same posts split into two thinner series
    assert {a.key for a in evaluate(lake, AlertSettings(key_kinds=("ticker",)))} <= {"FB", "META"}


def T0_48() -> datetime:
    from support.lakefixtures import T0

    return T0 + timedelta(hours=48)


@pytest.mark.parametrize("threshold", [0.6])
def test_spam_with_rotating_numbers_is_one_story(threshold):
    index = StoryIndex(StoryConfig(threshold=threshold))
    rng = random.Random(4)
    ids = {index.assign(f"s{i}", spam("D", rng), T + timedelta(minutes=i)).story_id for i in range(60)}
    assert len(ids) <= 4  # two templates; changed numbers split a few (4 stories measured, not 60)


def test_lake_files_written_before_stories_and_company_keys_still_load_and_count(tmp_path):
    """Old files lack companies/story_id/copies_seen/novelty (and old alert files lack stories,
    revision): the views fill NULL, each old row is its own story, company falls back to tickers."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from support.lakefixtures import write_alert

    from finpulse.pipeline.lake.query import run_query
    from finpulse.schemas.arrow import ALERT_SCHEMA, ENRICHED_SCHEMA

    new_cols = {"companies", "story_id", "copies_seen", "novelty"}
    old_schema = pa.schema([f for f in ENRICHED_SCHEMA if f.name not in new_cols])
    rows = [post(f"old-{i}", i, "negative" if i < 3 else "neutral", ("FB",), text="same text") for i in range(10)]
    # Delta tables written by the older schema (the lake is Delta since #16: files outside the log are not read)
    from finpulse.pipeline.lake import tables

    old = pa.Table.from_pylist([{k: r[k] for k in old_schema.names} for r in rows], schema=old_schema)
    tables.append(tmp_path, "enriched", old.append_column("date", pa.array(["2026-03-02"] * len(rows))))
    alert_dir = tmp_path / "scratch"
    alert = write_alert(alert_dir, "AAPL", 0)
    old_alerts = pq.read_table(alert).select(
        [f.name for f in ALERT_SCHEMA if f.name not in {"stories", "sources", "posts", "unit", "revision"}]
    )
    tables.append(tmp_path, "alerts", old_alerts.append_column("date", pa.array(["2026-03-02"])))
    got = run_query(tmp_path, "select count(*) n, count(story_id) s, count(companies) c from enriched").to_pylist()
    assert got == [{"n": 10, "s": 0, "c": 0}]
    series = run_query(
        tmp_path,
        "select key, sum(volume) v, sum(negatives) neg from sentiment_series('1 hour', 'company') group by key",
    ).to_pylist()
    assert series == [{"key": "FB", "v": 10, "neg": 3}]  # no story ids: every old row counts, under its ticker
    assert run_query(tmp_path, "select revision, stories from alerts").to_pylist() == [
        {"revision": None, "stories": None}
    ]


def test_a_backfill_restores_only_backfilled_rows_so_old_archives_are_not_evicted(tmp_path):
    """A lake with today's stream rows and an earlier backfill: the backfill's index starts from the
    backfill's rows (kafka_topic null), the stream's from the stream's."""
    from finpulse.pipeline.jobs.transforms import committed_story_rows

    old = [post(f"old-{i}", i, text=f"archive {i}") for i in range(3)]
    new = [post(f"new-{i}", 60 * 24 * 400 + i, text=f"stream {i}") for i in range(3)]
    for r in new:
        r.update(kafka_topic="news", kafka_partition=0, kafka_offset=int(r["id"][-1]))
    write_posts(tmp_path, old + new)
    window = StoryConfig().window
    assert sorted(r[0] for r in committed_story_rows(str(tmp_path), window, "file")) == ["old-0", "old-1", "old-2"]
    assert sorted(r[0] for r in committed_story_rows(str(tmp_path), window, "kafka")) == ["new-0", "new-1", "new-2"]
    assert sorted(r[0] for r in committed_story_rows(str(tmp_path), window)) == ["new-0", "new-1", "new-2"]


# -- the batch path and the vectorised signatures ----------------------------------------------
def _generated(n: int, seed: int) -> list[tuple[str, str, datetime]]:
    from finpulse.pipeline.devtools.generator import generate_posts

    return [
        (f"g{seed}-{i}", p["text"], datetime.fromisoformat(p["published_at"]))
        for i, p in enumerate(generate_posts(n, seed=seed))
    ]


def _with_replays(feed: list[tuple[str, str, datetime]], seed: int) -> list[list[tuple[str, str, datetime]]]:
    """`feed` cut into batches of 1-60 posts, with ids offered again: inside the same batch and in
    later batches (a redelivery, whatever its text), as Kafka and replayed bundles do."""
    rng = random.Random(seed)
    batches, i = [], 0
    while i < len(feed):
        batch = list(feed[i : i + rng.randint(1, 60)])
        i += len(batch)
        if rng.random() < 0.5:  # an id of this batch again, later in the batch
            rid, _, t = rng.choice(batch)
            batch.insert(rng.randint(len(batch) // 2, len(batch)), (rid, "a redelivered text", t))
        if i > 100 and rng.random() < 0.5:  # an id of an earlier batch
            rid, text, t = feed[rng.randrange(i - 100)]
            batch.insert(rng.randrange(len(batch) + 1), (rid, text, t))
        batches.append(batch)
    return batches


def _state(index: StoryIndex) -> tuple:
    """Everything an index decides with: entries (with their hash values, not their slots), stories, newest."""
    entries = {
        rid: (e.ts, e.story_id, e.copies, e.digest, index._store[e.slot].tobytes()) for rid, e in index._entries.items()
    }
    return entries, index._stories, index.newest


@pytest.mark.parametrize("source", ["generated", "real"])
def test_assign_many_gives_the_answers_and_state_of_assign_one_by_one(source, request):
    if source == "generated":
        feed = _generated(1500, seed=3)
    else:
        feed = _feed(request.getfixturevalue("negative") + request.getfixturevalue("other"), 300, seed=5)
    batches = _with_replays(feed, seed=8)
    one_by_one, batched = StoryIndex(), StoryIndex()
    expected = [one_by_one.assign(rid, text, t) for batch in batches for rid, text, t in batch]
    got = [a for batch in batches for a in batched.assign_many(*map(list, zip(*batch, strict=True)))]
    assert got == expected
    assert _state(batched) == _state(one_by_one)
    assert sum(a.copies_seen > 1 for a in expected) > 150  # the feed really has copies
    assert len({rid for batch in batches for rid, _, _ in batch}) < sum(map(len, batches))  # and replays


def test_assign_many_evicts_post_by_post_as_assign_does(negative):
    """A batch spanning more than the window: the first post is evicted by the second, so the
    third (its id again) is a new post, here a copy of the second, not a replay of the first."""
    later = T + timedelta(days=4)
    feed = [("a", negative[0], T), ("b", negative[1], later), ("a", negative[1], later + timedelta(minutes=1))]
    sequential = StoryIndex()
    expected = [sequential.assign(*r) for r in feed]
    assert [(a.story_id, a.copies_seen) for a in expected] == [("a", 1), ("b", 1), ("b", 2)]
    assert StoryIndex().assign_many(*map(list, zip(*feed, strict=True))) == expected


def _fmix32(h: int) -> int:
    mask = 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


EDGE_TEXTS = ["", "a", "abcde", "abcdef", "é€ café ünï", "日本語のテキストです", "𠀀𠀁 wide plane", "$d 5.5% cut"]


def test_vectorised_minhash_equals_a_per_text_loop_of_the_same_formula(other):
    """shingle_hashes + minhashes == for each text, min over its distinct shingles s of
    (a * fmix32(crc32(utf8(s))) + b) mod 2^32: the formula of datasketch's affine32 MinHash
    over the crc32 of each shingle, what the index computed one Python call per shingle before."""
    import zlib

    from datasketch import MinHash

    from finpulse.pipeline.enrich.stories import minhashes, shingle_hashes, shingles

    cfg = StoryConfig()
    texts = [normalise(t) for t in other[:60]] + EDGE_TEXTS
    a, b = (list(map(int, p)) for p in MinHash(num_perm=cfg.num_perm, seed=cfg.seed, scheme="affine32").permutations)
    got = minhashes(*shingle_hashes(texts, cfg.shingle), StoryIndex(cfg)._permutations)
    for text, row in zip(texts, got, strict=True):
        mixed = [_fmix32(zlib.crc32(s)) for s in shingles(text, cfg.shingle)]
        assert row.tolist() == [min((ai * h + bi) % 2**32 for h in mixed) for ai, bi in zip(a, b, strict=True)]


def test_vectorised_minhash_equals_datasketch_on_real_tweets_and_headlines_in_one_batch(real_data, headlines):
    """Many real texts in one call (several blocks of `minhashes`, non-ASCII windows among them):
    each row equals datasketch's own MinHash (crc32 per shingle, `update_batch`), and equals the
    same text hashed alone."""
    import zlib

    from datasketch import MinHash

    from finpulse.pipeline.devtools.bench_stories import real_texts
    from finpulse.pipeline.enrich.stories import minhashes, shingle_hashes, shingles

    cfg = StoryConfig()
    data = real_data.path("tfns_sentiment_train.csv", "sentfin_entity_train.jsonl").parent
    texts = [normalise(t) for t in real_texts(data, 600) + [h["text"] for h in headlines]] + EDGE_TEXTS
    assert sum(max(map(ord, t), default=0) >= 0x80 for t in texts) >= 4  # normalised real text is mostly ASCII
    perms = StoryIndex(cfg)._permutations
    hashes, counts = shingle_hashes(texts, cfg.shingle)
    assert len(hashes) > 8192  # more than two blocks
    got = minhashes(hashes, counts, perms)
    reference = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=zlib.crc32, scheme="affine32")
    for text, row in zip(texts, got, strict=True):
        reference.clear()
        reference.update_batch(shingles(text, cfg.shingle))
        assert (row == reference.hashvalues).all(), text
        assert (minhashes(*shingle_hashes([text], cfg.shingle), perms)[0] == row).all()


def test_eviction_reuses_slots_and_the_store_shrinks_after_a_burst(headlines):
    index = StoryIndex(StoryConfig(window=timedelta(days=3)))
    texts = [h["text"] for h in headlines]
    for i in range(2000):  # a burst: 2,000 posts in 20 hours
        index.assign(f"b{i}", texts[i % len(texts)] + f" {i}", T + timedelta(seconds=36 * i))
    assert len(index) == 2000 and index.slots == 2048
    for i in range(1000):  # then one post an hour: ~73 live, the slots of the evicted reused
        index.assign(f"q{i}", texts[i % len(texts)] + f" q{i}", T + timedelta(days=1, hours=i))
    assert len(index) == 73 and index.slots == 256  # halved while a quarter or less was in use


def test_restore_of_thousands_of_rows_then_replay_gives_the_same_ids():
    feed = _generated(3000, seed=4)
    straight = StoryIndex()
    expected = straight.assign_many(*map(list, zip(*feed, strict=True)))
    committed = [(rid, t, text, a.story_id, a.copies_seen) for (rid, text, t), a in zip(feed, expected, strict=True)]
    restarted = StoryIndex()
    assert restarted.restore(reversed(committed[:2600])) == 2600
    assert [restarted.assign(rid, text, t) for rid, text, t in feed[2600:]] == expected[2600:]
    assert sum(a.copies_seen > 1 for a in expected[2600:]) > 100


def _brute_force(feed: list[tuple[str, str, datetime]], cfg: StoryConfig) -> list[tuple[str, int]]:
    """(story_id, copies_seen) per post, by the index's rules checked against every live earlier post:
    no LSH tables, no slots, no store. A candidate is a live post that shares at least one band of
    MinHash values with this one (what the LSH tables find); it matches when published within the
    window and agreeing on enough values. The index's own hashing is used (it is tested above)."""
    import numpy as np

    index = StoryIndex(cfg)
    digests, signatures = index._signatures([text for _, text, _ in feed])
    digest_ids = np.unique(np.array(digests, object), return_inverse=True)[1]
    bands = signatures.reshape(len(feed), cfg.bands, cfg.num_perm // cfg.bands)
    ts = np.array([published.timestamp() for _, _, published in feed])
    window = cfg.window.total_seconds()
    alive = np.zeros(len(feed), bool)  # rows of the feed that are live posts
    story_of: list[str] = [""] * len(feed)
    row_of: dict[str, int] = {}  # live id -> its row
    stories: dict[str, list] = {}  # story -> [first ts, copies, live members]
    copies_of = [0] * len(feed)
    newest, out = float("-inf"), []
    for i, (rid, _, _) in enumerate(feed):
        if rid in row_of:
            out.append((story_of[row_of[rid]], copies_of[row_of[rid]]))
            continue
        near = alive & (np.abs(ts - ts[i]) <= window) & (ts >= newest - window)
        exact = near & (digest_ids == digest_ids[i])
        similar = near & (bands == bands[i]).all(2).any(1) & ((signatures == signatures[i]).sum(1) >= index._needed)
        matched = {story_of[j] for j in np.flatnonzero(exact if exact.any() else similar)}
        story = min(matched, key=lambda s: (stories[s][0], s)) if matched else rid
        entry = stories.setdefault(story, [ts[i], 0, 0])
        entry[1] += 1
        entry[2] += 1
        alive[i], story_of[i], copies_of[i], row_of[rid] = True, story, entry[1], i
        out.append((story, entry[1]))  # answered before eviction, which may drop this very post
        newest = max(newest, ts[i])
        for j in np.flatnonzero(alive & (ts < newest - window)):
            alive[j] = False
            del row_of[feed[j][0]]
            stories[story_of[j]][2] -= 1
            if stories[story_of[j]][2] == 0:
                del stories[story_of[j]]
    return out


@pytest.mark.parametrize("window_hours", [72, 2])
def test_the_lsh_tables_find_what_checking_every_live_post_finds(window_hours, negative, other):
    """Templated posts (most share a band with many others: hundreds of candidates a post) and real
    copies, with replays; a 2-hour window evicts, reuses slots and resizes the store all along.
    The index's answers equal a brute-force check of every live post."""
    cfg = StoryConfig(window=timedelta(hours=window_hours))
    generated = _generated(2500, seed=12)
    shift = generated[0][2] - T + timedelta(hours=1)  # the real headlines and copies among the generated posts
    real = [(rid, text, t + shift) for rid, text, t in _feed(negative + other, 300, seed=7)]
    feed = sorted(generated + real, key=lambda r: r[2])
    feed = [r for batch in _with_replays(feed, seed=4) for r in batch]
    index = StoryIndex(cfg)
    got = [(a.story_id, a.copies_seen) for i in range(0, len(feed), 256)
           for a in index.assign_many(*map(list, zip(*feed[i : i + 256], strict=True)))]
    assert got == _brute_force(feed, cfg)
    assert sum(c > 1 for _, c in got) > 200
