"""Story ids through the real pipeline: backfill vs a stream that is SIGKILLed mid-feed and restarted.

The backfill reads the feed once, uninterrupted. The stream reads the same feed from a
one-partition topic (the same order), is killed after the first part is committed, and restarts
with an index rebuilt from the lake. Equal ids on every row show both contracts at once: stream
== backfill, and killed-and-restarted == uninterrupted.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.processes import StreamProcess, lake_rows, send, wait_until

from finpulse.pipeline.devtools.copies import copy_of
from finpulse.pipeline.jobs.backfill import run_backfill
from finpulse.pipeline.lake.query import run_query

pytestmark = pytest.mark.slow


def feed(headlines: list[str], n: int = 60, seed: int = 9) -> list[dict]:
    """n real headlines, each copied 0-2 times within the next hours (retweets, syndication)."""
    rng = random.Random(seed)
    start = datetime(2026, 5, 4, 9, tzinfo=timezone.utc)
    posts = []
    for i, text in enumerate(headlines[:n]):
        t = start + timedelta(minutes=20 * i)
        posts.append({"id": f"o{i}", "text": text, "published_at": t.isoformat(), "source": "reuters", "kind": "news"})
        for j in range(rng.randrange(3)):
            posts.append(
                {
                    "id": f"o{i}c{j}",
                    "text": copy_of(text, rng),
                    "source": "twitter",
                    "kind": "social",
                    "published_at": (t + timedelta(minutes=rng.randrange(30, 600))).isoformat(),
                }
            )
    return sorted(posts, key=lambda p: (p["published_at"], p["id"]))


def stories(lake: Path) -> dict[str, tuple[str, int, float]]:
    rows = run_query(lake, "select id, story_id, copies_seen, novelty from enriched").to_pylist()
    return {r["id"]: (r["story_id"], r["copies_seen"], r["novelty"]) for r in rows}


def test_stream_killed_mid_feed_and_backfill_give_the_same_story_ids(broker, tmp_path, real_data):
    posts = feed([h["text"] for h in real_data.rows("headlines_real.jsonl")])
    cut = len(posts) * 3 // 5
    archive = tmp_path / "feed.jsonl"
    archive.write_text("".join(json.dumps(p) + "\n" for p in posts))
    run_backfill(str(archive), str(tmp_path / "backfilled"), progress=False)
    backfilled = stories(tmp_path / "backfilled")

    lake = tmp_path / "streamed"
    send(broker.bootstrap, "story-feed", [json.dumps(p).encode() for p in posts[:cut]], partitions=1)
    first = StreamProcess(broker.bootstrap, ["story-feed"], lake, log=tmp_path / "run1.log")
    wait_until(lambda: lake.exists() and lake_rows(lake) >= cut, 240, f"{cut} rows committed")
    first.kill()
    send(broker.bootstrap, "story-feed", [json.dumps(p).encode() for p in posts[cut:]], partitions=1)
    second = StreamProcess(broker.bootstrap, ["story-feed"], lake, "--idle-exit", "5", log=tmp_path / "run2.log")
    assert second.wait(300) == 0, second.output()[-3000:]
    streamed = stories(lake)

    assert len(backfilled) == len(posts) and streamed == backfilled
    assert "story index: " in second.output() and f"{cut} committed rows" in second.output()
    ids_before = {p["id"] for p in posts[:cut]}
    across = [i for i in (p["id"] for p in posts[cut:]) if streamed[i][0] in ids_before and streamed[i][0] != i]
    assert len(across) >= 5, "copies after the kill must join stories first reported before it"
    assert sum(1 for s, c, _ in streamed.values() if c > 1) >= 30
