"""A labelled alert evaluation on real text: real headlines and tweets on a timeline, with copies and spam.

    finpulse realtext-eval --data ../shared/data

The earlier simulation (simulate.py) draws counts, and the generator writes posts from a few
dozen templates: neither has copies, so neither could show what real traffic did (alerts resting
on retweets of one post, spam diluting a real event). Here every post is a real text from the
training files (TFNS tweets, SEntFiN headlines; `real_pool`), placed on an hourly timeline per
company, and the traffic is made the way real feeds make it (pipeline/devtools/copies.py):

* background: ~`rate` posts an hour per company with day/night seasonality, a quarter of them
  copies (retweets, quotes, syndication) of a post of the last hours;
* `genuine` events (the labelled targets): 12-35 distinct real negative texts about the company
  within 1-2 hours, each copied 0-3 times;
* `diluted` events (also targets): 13 distinct real negatives plus 60 copies of a neutral
  promotion carrying the ticker, the outlook cut that real traffic hid;
* `copy_storm` (not events): one negative post copied 40-80 times within 2 hours, the "L$D"
  retweet storm;
* `spam_storm` (not events): 60 copies of a neutral promotion.

Sentiment is the dataset's human label (Bearish -> negative etc.), not the model's: this measures
counting, de-duplication and the detector, with the sentiment model held perfect. Company keys
are assigned directly, not linked (linking has its own labelled set). Rows go through the real
StoryIndex, a real lake and `finpulse alerts`' own evaluate(), once counting stories and once
counting posts. An event is found if its company alerts in one of its buckets or the next; an
alert on a non-event storm "rests on copies"; any other alert is a background false alarm.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import random
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

T0 = datetime(2025, 1, 6, tzinfo=timezone.utc)
COMPANIES = [
    "AAPL",
    "MSFT",
    "NVDA",
    "AMZN",
    "META",
    "TSLA",
    "JPM",
    "XOM",
    "D",
    "BA",
    "INTC",
    "PFE",
    "DIS",
    "NKE",
    "KO",
    "WMT",
    "GS",
    "F",
    "T",
    "NFLX",
]


def real_pool(data: Path) -> tuple[list[str], list[str]]:
    """(negative texts, other texts) from TFNS tweets and SEntFiN headlines, by their human labels."""
    neg: list[str] = []
    other: list[str] = []
    with open(data / "tfns_sentiment_train.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            (neg if r["label"] == "Bearish" else other).append(r["text"])
    for line in (data / "sentfin_entity_train.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        labels = {e["sentiment"] for e in d["entities"]}
        if labels == {"negative"}:
            neg.append(d["text"])
        elif "negative" not in labels:
            other.append(d["text"])
    return neg, other


@dataclass(frozen=True)
class Injected:
    kind: str  # genuine | diluted | copy_storm | spam_storm
    company: str
    start: int  # hour index
    hours: int

    @property
    def target(self) -> bool:
        return self.kind in ("genuine", "diluted")


def build_feed(data: Path, days: int = 60, rate: float = 2.0, seed: int = 3) -> tuple[list[dict], list[Injected]]:
    from finpulse.pipeline.devtools.copies import copy_of, spam

    rng = random.Random(seed)
    neg, other = real_pool(data)
    rng.shuffle(neg)
    rng.shuffle(other)
    neg_it, other_it = _cycle(neg), _cycle(other)
    posts: list[dict] = []
    injected: list[Injected] = []
    hours = days * 24
    for company in COMPANIES:
        recent: list[tuple[str, str]] = []
        for h in range(hours):
            lam = rate * (1 + 0.6 * math.sin(2 * math.pi * ((h % 24) - 8) / 24))
            for _ in range(_poisson(rng, lam)):
                if recent and rng.random() < 0.25:
                    original, sentiment = rng.choice(recent[-20:])
                    text = copy_of(original, rng)
                else:
                    negative = rng.random() < 0.15
                    text, sentiment = (next(neg_it), "negative") if negative else (next(other_it), "neutral")
                    recent.append((text, sentiment))
                posts.append(_post(company, h, rng, text, sentiment))
        # events, at least 5 days apart, after a week of history
        slots = rng.sample(range(7, days - 1, 5), 6)
        for kind, day in zip(
            ["genuine", "genuine", "diluted", "copy_storm", "copy_storm", "spam_storm"], slots, strict=True
        ):
            start = day * 24 + rng.randrange(8, 20)
            length = rng.choice([1, 2])
            injected.append(Injected(kind, company, start, length))
            if kind in ("genuine", "diluted"):
                k = 13 if kind == "diluted" else rng.randrange(12, 36)
                for _ in range(k):
                    text = next(neg_it)
                    h = start + rng.randrange(length)
                    posts.append(_post(company, h, rng, text, "negative", source="reuters"))
                    for _ in range(rng.randrange(4 if kind == "genuine" else 1)):
                        posts.append(_post(company, h, rng, copy_of(text, rng), "negative"))
            if kind in ("diluted", "spam_storm"):
                for _ in range(60):
                    posts.append(
                        _post(
                            company, start + rng.randrange(length), rng, spam(company, rng), "neutral", source="twitter"
                        )
                    )
            if kind == "copy_storm":
                text = next(neg_it)
                for _ in range(rng.randrange(40, 81)):
                    posts.append(
                        _post(
                            company,
                            start + rng.randrange(length),
                            rng,
                            copy_of(text, rng),
                            "negative",
                            source="twitter",
                        )
                    )
    posts.sort(key=lambda p: (p["published_at"], p["id"]))
    for i, p in enumerate(posts):
        p["id"] = f"p{i:07d}"
    return posts, injected


def _cycle(items: list[str]):
    while True:
        yield from items


def _poisson(rng: random.Random, lam: float) -> int:
    k, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _post(company: str, hour: int, rng: random.Random, text: str, sentiment: str, source: str | None = None) -> dict:
    return {
        "id": "",
        "company": company,
        "text": text,
        "sentiment": sentiment,
        "source": source or rng.choice(["twitter", "stocktwits", "reuters", "bloomberg", "reddit"]),
        "published_at": T0 + timedelta(hours=hour, seconds=rng.randrange(3600)),
    }


def write_lake(posts: list[dict], lake: Path) -> dict:
    """Stories from the pipeline's own index, rows in the lake's schema (one file per day)."""
    from collections import defaultdict

    from finpulse.pipeline.enrich.stories import StoryIndex
    from finpulse.pipeline.lake.commit import write_parquet
    from finpulse.schemas.arrow import ENRICHED_SCHEMA

    index = StoryIndex()
    by_day: dict[str, list[dict]] = defaultdict(list)
    score = {"negative": -0.8, "neutral": 0.0}
    for p in posts:
        a = index.assign(p["id"], p["text"], p["published_at"])
        probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1} | {p["sentiment"]: 0.8}
        by_day[p["published_at"].strftime("%Y-%m-%d")].append(
            {
                "id": p["id"],
                "kind": "social",
                "source": p["source"],
                "published_at": p["published_at"],
                "ingested_at": p["published_at"],
                "text": p["text"],
                "tickers": [p["company"]],
                "companies": [p["company"]],
                "sentiment": p["sentiment"],
                "sentiment_score": score[p["sentiment"]],
                "sentiment_probs": probs,
                "topic": "Stock Commentary",
                "topic_score": 0.5,
                "entities": [],
                "model_version": "labels",
                "story_id": a.story_id,
                "copies_seen": a.copies_seen,
                "novelty": a.novelty,
            }
        )
    for day, rows in by_day.items():
        path = lake / "enriched" / f"date={day}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(path, rows, ENRICHED_SCHEMA)
    stories = {r["story_id"] for rows in by_day.values() for r in rows}
    return {"posts": len(posts), "stories": len(stories)}


def score(alerts, injected: list[Injected], days: int) -> dict:
    found = {k: 0 for k in ("genuine", "diluted")}
    on_copies = false_alarms = 0
    for inj in injected:
        if inj.target and any(a.key == inj.company and _overlaps(a, inj) for a in alerts):
            found[inj.kind] += 1
    for a in alerts:
        hits = [inj for inj in injected if inj.company == a.key and _overlaps(a, inj)]
        if any(inj.target for inj in hits):
            continue
        if hits:
            on_copies += 1
        else:
            false_alarms += 1
    n = {k: sum(1 for i in injected if i.kind == k) for k in ("genuine", "diluted")}
    company_years = len(COMPANIES) * days / 365
    return {
        "alerts": len(alerts),
        "alerts_per_company_year": round(len(alerts) / company_years, 1),
        "recall_genuine": round(found["genuine"] / n["genuine"], 3),
        "recall_diluted": round(found["diluted"] / n["diluted"], 3),
        "alerts_on_copies": on_copies,
        "background_false_alarms_per_company_year": round(false_alarms / company_years, 1),
    }


def _overlaps(alert, inj: Injected) -> bool:
    start = T0 + timedelta(hours=inj.start)
    end = T0 + timedelta(hours=inj.start + inj.hours + 1)  # its buckets and the next
    return alert.window_start < end and alert.window_end > start


def run(data: Path, days: int = 60, rate: float = 2.0, seed: int = 3, min_volumes: tuple[int, ...] = (20, 12)) -> dict:
    from finpulse.pipeline.alerts.evaluate import evaluate
    from finpulse.pipeline.runtime.settings import AlertSettings, DetectorConfig

    posts, injected = build_feed(data, days, rate, seed)
    out: dict = {
        "companies": len(COMPANIES),
        "days": days,
        "rate_per_hour": rate,
        "injected": {
            k: sum(1 for i in injected if i.kind == k) for k in ("genuine", "diluted", "copy_storm", "spam_storm")
        },
    }
    with tempfile.TemporaryDirectory(prefix="finpulse-realtext-") as tmp:
        out.update(write_lake(posts, Path(tmp)))
        for unit in ("post", "story"):
            for mv in min_volumes:
                cfg = dataclasses.replace(DetectorConfig(), min_volume=mv)
                alerts = evaluate(tmp, AlertSettings(unit=unit, detector=cfg, min_stories=mv))
                out[f"{unit}_min_volume_{mv}"] = score(alerts, injected, days)
    return out
