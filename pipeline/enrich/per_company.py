"""Per-company sentiment rows: scored mentions -> one `entity_sentiment` element per company. Pure.

The engine (models/engine/inference.py) scores every ORG entity and every cashtag span of a text with the
span head; here each mention is linked to a ticker (a cashtag names its own, an ORG goes through
the gazetteer), unlinked mentions are dropped, overlapping mentions of one company count once
("$AAPL" and the ORG "AAPL" inside it), and the mentions of one company are merged: probabilities
averaged, first mention kept as text/start/end, relevance from count and position
(models/spans.relevance).
"""

from __future__ import annotations

from collections.abc import Sequence

from finpulse.models.engine.inference import MentionSentiment
from finpulse.models.spans import relevance
from finpulse.pipeline.enrich.companies import Gazetteer
from finpulse.pipeline.enrich.tickers import cashtag_ticker

LABELS = ("negative", "neutral", "positive")


def mention_ticker(m: MentionSentiment, gazetteer: Gazetteer, text: str | None = None) -> str | None:
    """The company key of a mention: a cashtag's ticker mapped to its company ("$FB" -> META), else the
    gazetteer link of the words (with the post for evidence), else None."""
    tag = cashtag_ticker(m.text)
    if tag:
        return gazetteer.company_key(tag)
    return gazetteer.link(m.text, text, m.start)


def company_sentiment(text: str, mentions: Sequence[MentionSentiment], gazetteer: Gazetteer) -> list[dict]:
    """One dict per company, in order of first mention (the EntitySentiment shape)."""
    kept: list[tuple[str, MentionSentiment]] = []
    for m in sorted(mentions, key=lambda m: (m.start, -(m.end - m.start))):
        ticker = mention_ticker(m, gazetteer, text)
        if ticker is None:
            continue
        if any(t == ticker and m.start < k.end and k.start < m.end for t, k in kept):
            continue  # the same mention seen twice (cashtag and ORG)
        kept.append((ticker, m))
    by_ticker: dict[str, list[MentionSentiment]] = {}
    for ticker, m in kept:
        by_ticker.setdefault(ticker, []).append(m)
    rel = relevance([(len(ms), ms[0].start, ms[0].end) for ms in by_ticker.values()], len(text))
    out = []
    for (ticker, ms), r in zip(by_ticker.items(), rel, strict=True):
        probs = {k: round(sum(m.probs[k] for m in ms) / len(ms), 6) for k in LABELS}
        first = ms[0]
        out.append({
            "ticker": ticker, "text": first.text, "start": first.start, "end": first.end,
            "sentiment": max(LABELS, key=lambda k: probs[k]),
            "score": round(max(-1.0, min(1.0, probs["positive"] - probs["negative"])), 6),
            "probs": probs, "relevance": r,
        })
    return out
