"""Copies of real posts, the way real feeds make them: retweets, quotes, syndicated edits, templated spam.

Used to measure story de-duplication (precision/recall on copies made from real headlines) and
to build the real-text alert evaluation (docs/ALERTS.md, "Real text"). Seeded, so every figure
can be reproduced. The edits are small on purpose: a copy that rewrites the story is a new
report, not a copy.
"""

from __future__ import annotations

import random

_USERS = [
    "marketwatcher",
    "stockguru88",
    "wallstreetbets_fan",
    "newsbot",
    "fin_alerts",
    "traderjoe",
    "bullbear",
    "tickertape",
]
_SUFFIXES = [" - Reuters", " | Markets Insider", " (Bloomberg)", " - MarketWatch", " #stocks", " via @newsbot"]
_PREFIXES = ["BREAKING: ", "JUST IN: ", "UPDATE: ", "", "WATCH: "]
_SYNONYMS = {
    "shares": "stock",
    "rises": "gains",
    "falls": "drops",
    "cuts": "lowers",
    "says": "said",
    "profit": "earnings",
    "up": "higher",
    "down": "lower",
    "to": "will",
    "stock": "shares",
    "drops": "falls",
    "gains": "rises",
}


def retweet(text: str, rng: random.Random) -> str:
    """`RT @user: text`, cut at 140 characters the way old clients did."""
    out = f"RT @{rng.choice(_USERS)}: {text}"
    return out if len(out) <= 140 or rng.random() < 0.5 else out[:139] + "…"


def quote(text: str, rng: random.Random) -> str:
    """A quoted copy with a short link or a comment around it."""
    link = f"https://t.co/{rng.getrandbits(40):010x}"
    return rng.choice([f'"{text}" {link}', f"{text} {link}", f"Wow. {text}", f"{text} 👀 {link}"])


def syndicate(text: str, rng: random.Random) -> str:
    """The same story from another outlet: a prefix or suffix, one word swapped or dropped, case changes."""
    words = text.split()
    if len(words) > 4:
        i = rng.randrange(len(words))
        w = words[i]
        if w.lower() in _SYNONYMS:
            words[i] = _SYNONYMS[w.lower()]
        elif rng.random() < 0.5 and len(words) > 6 and w.islower():  # drop a common word, never a name
            del words[i]
    out = " ".join(words)
    if rng.random() < 0.3:
        out = out.upper() if rng.random() < 0.3 else out.title()
    return rng.choice(_PREFIXES) + out + rng.choice(_SUFFIXES)


def copy_of(text: str, rng: random.Random) -> str:
    """One copy by a randomly chosen route (retweet, quote, syndication, or a retweet of a syndication)."""
    route = rng.random()
    if route < 0.35:
        return retweet(text, rng)
    if route < 0.55:
        return quote(text, rng)
    if route < 0.85:
        return syndicate(text, rng)
    return retweet(syndicate(text, rng), rng)


def spam(ticker: str, rng: random.Random) -> str:
    """Templated promotion carrying a ticker: the template stays, the numbers and emoji vary."""
    n = rng.randrange(2, 40) * 1000
    pct = rng.randrange(50, 900)
    return rng.choice(
        [
            f"🚀🚀 ${ticker} is about to EXPLODE {pct}%!! Join {n:,} traders in our free Discord "
            f"https://discord.gg/{rng.getrandbits(24):06x} #stocks #${ticker}",
            f"${ticker} alert 🚨 our members are up {pct}% this week. {n:,} traders already inside, "
            f"link in bio! #${ticker} #daytrading",
        ]
    )


def measure_dedup(texts: list[str], copies_per_text: int = 2, seed: int = 7, config=None) -> dict:
    """De-dup precision/recall on a feed of real texts, each followed (within hours) by copies.

    Truth: a copy belongs to its original's story; distinct originals are distinct stories.
    Recall = copies assigned to their original's story / copies. Precision = posts joined to an
    earlier story correctly / posts joined to any earlier story (a distinct original joined to
    another is a false merge: it loses its evidence). Also returns the false-merge count.
    """
    from datetime import datetime, timedelta, timezone

    from finpulse.pipeline.enrich.stories import StoryIndex

    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    feed: list[tuple[datetime, str, str, str]] = []  # (time, id, text, true story)
    for i, text in enumerate(texts):
        t = start + timedelta(minutes=10 * i)
        feed.append((t, f"o{i}", text, f"o{i}"))
        for j in range(copies_per_text):
            feed.append((t + timedelta(minutes=rng.randrange(1, 600)), f"o{i}c{j}", copy_of(text, rng), f"o{i}"))
    feed.sort()
    index = StoryIndex(config)
    joined = correct_joins = copies = found = 0
    for t, rid, text, truth in feed:
        got = index.assign(rid, text, t).story_id
        is_copy = rid != truth
        copies += is_copy
        if got != rid:
            joined += 1
            correct_joins += got == truth
        found += is_copy and got == truth
    return {
        "originals": len(texts),
        "copies": copies,
        "recall": round(found / copies, 4) if copies else None,
        "precision": round(correct_joins / joined, 4) if joined else None,
        "false_merges": joined - correct_joins,
    }
