"""Realistic synthetic financial news and social posts (the demo feed and the benchmark corpus).

Seeded and deterministic: the same seed gives the same posts. Posts mix news and social styles,
companies and cashtags, every sentiment, many topics, lengths from a few words to long articles,
and timestamps spread over time.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

COMPANIES: list[tuple[str, str, str]] = [
    # (ticker, name, sector/product hint)
    ("AAPL", "Apple", "iPhone"), ("MSFT", "Microsoft", "Azure"), ("NVDA", "Nvidia", "GPU"),
    ("AMZN", "Amazon", "AWS"), ("GOOGL", "Alphabet", "search advertising"), ("META", "Meta Platforms", "Instagram"),
    ("TSLA", "Tesla", "electric vehicle"), ("BRK.B", "Berkshire Hathaway", "insurance"), ("JPM", "JPMorgan Chase", "investment banking"),
    ("V", "Visa", "payments"), ("UNH", "UnitedHealth", "health insurance"), ("XOM", "Exxon Mobil", "oil"),
    ("JNJ", "Johnson & Johnson", "pharmaceutical"), ("WMT", "Walmart", "retail"), ("MA", "Mastercard", "card"),
    ("PG", "Procter & Gamble", "consumer goods"), ("HD", "Home Depot", "home improvement"), ("CVX", "Chevron", "refining"),
    ("LLY", "Eli Lilly", "obesity drug"), ("ABBV", "AbbVie", "Humira"), ("MRK", "Merck", "Keytruda"),
    ("KO", "Coca-Cola", "beverage"), ("PEP", "PepsiCo", "snack"), ("AVGO", "Broadcom", "chip"),
    ("COST", "Costco", "warehouse club"), ("ORCL", "Oracle", "cloud database"), ("BAC", "Bank of America", "consumer banking"),
    ("ADBE", "Adobe", "creative software"), ("CRM", "Salesforce", "CRM software"), ("NFLX", "Netflix", "streaming"),
    ("AMD", "Advanced Micro Devices", "processor"), ("INTC", "Intel", "foundry"), ("DIS", "Walt Disney", "theme park"),
    ("CSCO", "Cisco", "networking"), ("PFE", "Pfizer", "vaccine"), ("BA", "Boeing", "aircraft"),
    ("NKE", "Nike", "sneaker"), ("MCD", "McDonald's", "restaurant"), ("GS", "Goldman Sachs", "trading"),
    ("CAT", "Caterpillar", "construction equipment"), ("IBM", "IBM", "mainframe"), ("QCOM", "Qualcomm", "modem chip"),
    ("SBUX", "Starbucks", "coffee"), ("GE", "GE Aerospace", "jet engine"), ("UBER", "Uber", "ride-hailing"),
    ("PYPL", "PayPal", "digital wallet"), ("F", "Ford", "pickup truck"), ("GM", "General Motors", "EV battery"),
    ("T", "AT&T", "wireless"), ("VZ", "Verizon", "5G network"),
]
PEOPLE = ["Tim Cook", "Satya Nadella", "Jensen Huang", "Andy Jassy", "Sundar Pichai", "Mark Zuckerberg", "Elon Musk",
          "Warren Buffett", "Jamie Dimon", "Mary Barra", "Lisa Su", "Jerome Powell", "Janet Yellen", "Christine Lagarde"]
PLACES = ["New York", "London", "Frankfurt", "Tokyo", "Shanghai", "Washington", "Brussels", "California", "Texas", "Singapore"]
NEWS_SOURCES = ["reuters", "bloomberg", "wsj", "ft", "cnbc", "marketwatch", "barrons"]
SOCIAL_SOURCES = ["twitter", "stocktwits", "reddit"]

NEWS = {
    "negative": [
        "{name} shares tumble after {product} sales miss estimates",
        "{name} cuts full-year outlook as demand for {product} weakens",
        "Regulators in {place} open probe into {name} over {product} practices",
        "{name} to lay off thousands of workers amid slowing {product} business",
        "{name} downgraded to sell at {bank}, price target slashed",
        "{name} recalls {product} products after safety complaints; stock slides {pct}%",
        "{name} CFO resigns unexpectedly, shares fall {pct}% in premarket trading",
        "{name} faces class action lawsuit over misleading {product} disclosures",
    ],
    "neutral": [
        "{name} to report quarterly results on {weekday}",
        "{name} names new head of {product} division",
        "{name} schedules investor day in {place}",
        "{person} to speak at {name} annual meeting in {place}",
        "{name} files annual report with the SEC",
        "{name} completes previously announced debt offering",
        "{name} declares regular quarterly dividend of ${cents} cents per share",
    ],
    "positive": [
        "{name} shares jump {pct}% after earnings beat on strong {product} demand",
        "{name} raises guidance as {product} revenue surges",
        "{name} announces ${bn} billion share buyback",
        "{name} upgraded to buy at {bank}; analysts see {product} upside",
        "{name} wins major {product} contract in {place}",
        "{name} hits record high as investors cheer {product} growth",
        "{name} beats by ${cents_small}, revenue tops estimates",
    ],
}
SOCIAL = {
    "negative": [
        "${tk} is getting crushed today, {product} numbers were ugly. Selling my position",
        "Not touching ${tk} after that guidance cut. Bearish af",
        "${tk} breaking support, could see another {pct}% leg down",
        "Lost so much on ${tk} this week smh. {product} story is over",
        "${tk} puts printing 📉 management has no clue about {product}",
    ],
    "neutral": [
        "Anyone watching ${tk} earnings on {weekday}?",
        "${tk} flat premarket, waiting for the {person} interview",
        "What do you think about ${tk} at these levels?",
        "Holding ${tk} and ${tk2}, no changes this week",
    ],
    "positive": [
        "${tk} to the moon 🚀 {product} demand is insane",
        "Loaded more ${tk} on the dip, {product} thesis intact. Bullish",
        "${tk} breakout confirmed, targeting new highs this month",
        "Huge beat from ${tk}! {product} crushing it",
        "${tk} calls paying off nicely today 💰",
    ],
}
MACRO = [
    ("negative", "Stocks slide as {person} signals rates will stay higher for longer"),
    ("negative", "Oil prices plunge on fears of weak demand from {place}"),
    ("neutral", "Treasury yields steady ahead of inflation data"),
    ("neutral", "{person} to testify before lawmakers in {place} on {weekday}"),
    ("positive", "Wall Street rallies as inflation cools more than expected"),
    ("positive", "Dollar gains after strong jobs report"),
]
FILLER = [
    "Analysts had expected a different outcome, according to data compiled by the agency.",
    "The company did not immediately respond to a request for comment.",
    "Trading volume was about {pct} times the daily average.",
    "The broader market index was little changed in early trading.",
    "Executives said on a call with analysts that the outlook remains uncertain.",
    "The results come as investors weigh the impact of higher interest rates on spending.",
    "Shares have moved sharply this year, outperforming several peers in the sector.",
]
BANKS = ["Morgan Stanley", "Goldman Sachs", "JPMorgan", "Citi", "Barclays", "UBS", "Jefferies"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def _fill(template: str, rng: random.Random, company: tuple[str, str, str]) -> str:
    tk, name, product = company
    other = rng.choice(COMPANIES)[0]
    return template.format(
        name=name, tk=tk, tk2=other, product=product, place=rng.choice(PLACES), person=rng.choice(PEOPLE),
        bank=rng.choice(BANKS), pct=rng.randint(2, 18), bn=rng.randint(1, 60), cents=rng.randint(10, 95),
        cents_small=f"0.{rng.randint(1, 30):02d}", weekday=rng.choice(WEEKDAYS),
    )


@dataclass(frozen=True)
class Event:
    """A burst of negative posts about one company: `posts` of them within `minutes` from `at`."""

    ticker: str
    at: datetime
    posts: int = 60
    minutes: int = 45

    @classmethod
    def parse(cls, spec: str) -> Event:
        """'BA@2026-11-03T14:00:00Z' or 'BA@2026-11-03T14:00:00Z,80,45' (posts, minutes)."""
        ticker, _, rest = spec.partition("@")
        when, *numbers = rest.split(",")
        try:
            at = datetime.fromisoformat(when.replace("Z", "+00:00"))
            posts = int(numbers[0]) if numbers else 60
            minutes = int(numbers[1]) if len(numbers) > 1 else 45
        except ValueError:
            raise ValueError(f"bad event {spec!r}; write TICKER@ISO-TIME[,POSTS[,MINUTES]], e.g. BA@2026-11-03T14:00:00Z,80") from None
        if ticker.upper() not in {c[0] for c in COMPANIES}:
            raise ValueError(f"event ticker {ticker!r} is not one of the generator's companies")
        return cls(ticker.upper(), at if at.tzinfo else at.replace(tzinfo=timezone.utc), posts, minutes)


# Event posts are separate reports, not copies of a few templates: each joins a headline and a
# social take, both negative. (Story de-duplication, pipeline/enrich/stories.py, counts near-
# identical posts once; with one template per post an 80-post event was only ~15 distinct stories.)


def event_posts(event: Event, seed: int = 7) -> Iterator[dict]:
    """The injected posts: negative headlines and social posts about one company, each with its own take."""
    rng = random.Random(f"{seed}-{event.ticker}-{event.at.isoformat()}")
    company = next(c for c in COMPANIES if c[0] == event.ticker)
    for i in range(event.posts):
        ts = event.at + timedelta(seconds=rng.uniform(0, event.minutes * 60))
        social = rng.random() < 0.6
        parts = [_fill(rng.choice(NEWS["negative"]), rng, company), _fill(rng.choice(SOCIAL["negative"]), rng, company)]
        text = " ".join(parts if not social else parts[::-1])
        yield {
            "id": f"event-{event.ticker}-{event.at:%Y%m%d%H%M}-{i}",
            "kind": "social" if social else "news",
            "source": rng.choice(SOCIAL_SOURCES if social else NEWS_SOURCES),
            "published_at": ts.isoformat(),
            "text": text,
            "lang": "en",
        }


def generate_posts(n: int, seed: int = 7, start: datetime | None = None, span_hours: float = 72.0,
                   sentiment_weights: tuple[float, float, float] = (0.3, 0.4, 0.3),
                   events: tuple[Event, ...] = ()) -> Iterator[dict]:
    """Yield n post dicts (input-record shape) with timestamps spread evenly over span_hours,
    plus the posts of any injected events, merged in time order."""
    posts = list(_background(n, seed, start, span_hours, sentiment_weights))
    for event in events:
        posts.extend(event_posts(event, seed))
    if events:
        posts.sort(key=lambda p: p["published_at"])
    yield from posts


def _background(n: int, seed: int, start: datetime | None, span_hours: float,
                sentiment_weights: tuple[float, float, float]) -> Iterator[dict]:
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
    sentiments = ("negative", "neutral", "positive")
    for i in range(n):
        ts = start + timedelta(hours=span_hours * i / max(1, n)) + timedelta(seconds=rng.randint(0, 59))
        company = rng.choice(COMPANIES)
        sentiment = rng.choices(sentiments, weights=sentiment_weights)[0]
        if rng.random() < 0.55:
            yield _news(rng, company, sentiment, ts, seed, i)
        else:
            yield _social(rng, company, sentiment, ts, seed, i)


def _news(rng: random.Random, company, sentiment: str, ts: datetime, seed: int, i: int) -> dict:
    if rng.random() < 0.12:
        sentiment, template = rng.choice(MACRO)
        title = _fill(template, rng, company)
    else:
        title = _fill(rng.choice(NEWS[sentiment]), rng, company)
    body = [title + "."]
    for _ in range(rng.choice([0, 1, 2, 3, 5, 8])):
        body.append(_fill(rng.choice(FILLER), rng, company))
    source = rng.choice(NEWS_SOURCES)
    return {
        "id": f"gen-{seed}-{i}",
        "kind": "news",
        "source": source,
        "published_at": ts.isoformat(),
        "title": title,
        "text": " ".join(body),
        "url": f"https://{source}.example/{company[0].lower()}/{seed}-{i}",
        "lang": "en",
        "tickers": [company[0]] if rng.random() < 0.5 else [],
    }


def _social(rng: random.Random, company, sentiment: str, ts: datetime, seed: int, i: int) -> dict:
    text = _fill(rng.choice(SOCIAL[sentiment]), rng, company)
    return {
        "id": f"gen-{seed}-{i}",
        "kind": "social",
        "source": rng.choice(SOCIAL_SOURCES),
        "published_at": ts.isoformat(),
        "text": text,
        "author": f"user{rng.randint(1, 5000)}",
        "lang": "en",
    }


def to_jsonl(posts) -> str:
    return "".join(json.dumps(p) + "\n" for p in posts)
