"""Record models: the single source of truth for what enters and leaves the pipeline."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["news", "social"]
SentimentLabel = Literal["negative", "neutral", "positive"]


class InputRecord(BaseModel):
    """One news article or social post as it arrives (Kafka message or archive line)."""

    model_config = ConfigDict(extra="ignore", strict=False)

    id: str = ""
    text: str
    kind: Kind | None = None
    source: str = "unknown"
    published_at: datetime | None = None
    title: str | None = None
    url: str | None = None
    author: str | None = None
    lang: str | None = None
    tickers: list[str] = Field(default_factory=list)

    @field_validator("id", "text", "source", "title", "url", "author", "lang", mode="before")
    @classmethod
    def _strings_only(cls, v: object) -> object:
        # Strict about types (a number where text belongs is a producer bug), lenient about null.
        if v is not None and not isinstance(v, str):
            raise ValueError(f"expected a string, got {type(v).__name__}")
        return v

    @field_validator("tickers", mode="before")
    @classmethod
    def _ticker_list(cls, v: object) -> object:
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            raise ValueError("tickers must be a list of strings")
        return v

    @field_validator("published_at", mode="before")
    @classmethod
    def _timestamp_string(cls, v: object) -> object:
        if v is not None and not isinstance(v, (str, datetime)):
            raise ValueError("published_at must be an ISO-8601 string")
        return v

    @field_validator("published_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)

    @field_validator("text")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty")
        return v

    @model_validator(mode="after")
    def _derive_id(self) -> InputRecord:
        if not self.id:
            self.id = derive_id(self.source, self.url, self.text)
        return self


def derive_id(source: str, url: str | None, text: str) -> str:
    """Deterministic id so a replayed or re-archived record keeps its identity."""
    digest = hashlib.sha256("\x1f".join([source, url or "", text]).encode("utf-8", "surrogatepass")).hexdigest()
    return f"h-{digest[:32]}"


class SentimentProbs(BaseModel):
    negative: float
    neutral: float
    positive: float


class Entity(BaseModel):
    text: str
    type: str
    start: int  # character offsets into the record's `text`, end exclusive
    end: int
    score: float


class EntitySentiment(BaseModel):
    """Sentiment toward one company a post mentions (a linked ORG span, a $CASHTAG, a gazetteer name).

    One element per company: several mentions of the same company share one element (probabilities
    averaged over its mentions; text/start/end are its first mention)."""

    ticker: str
    text: str  # the first mention as written in the text
    start: int  # character offsets of that mention into the record's `text`, end exclusive
    end: int
    sentiment: SentimentLabel
    score: float = Field(ge=-1.0, le=1.0)  # P(positive) - P(negative)
    probs: SentimentProbs
    relevance: float = Field(ge=0.0, le=1.0)  # 1 = the post's main subject; see models/spans.relevance


class EnrichedRecord(BaseModel):
    """One row of LAKE/enriched: the input plus the three models' outputs and provenance."""

    id: str
    kind: Kind
    source: str
    published_at: datetime
    ingested_at: datetime
    title: str | None = None
    text: str
    url: str | None = None
    author: str | None = None
    lang: str | None = None
    tickers: list[str]
    sentiment: SentimentLabel
    sentiment_score: float = Field(ge=-1.0, le=1.0)
    sentiment_probs: SentimentProbs
    topic: str
    topic_score: float
    entities: list[Entity]
    # Per-company sentiment. Null in rows written before it existed (old lake files read as null,
    # never rewritten); an empty list when the text names no company.
    entity_sentiment: list[EntitySentiment] | None = None
    model_version: str
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    # Added for issue #15, nullable so older files read with nulls (lake/query.py fills them).
    companies: list[str] | None = None  # company keys (one per SEC company: FB and META are META)
    story_id: str | None = None  # id of the first report of this near-duplicate story (pipeline/enrich/stories.py)
    copies_seen: int | None = None  # posts of that story seen so far, this one included
    novelty: float | None = Field(default=None, ge=0.0, le=1.0)  # 1 / copies_seen


class DeadLetter(BaseModel):
    """A message that could not be accepted, kept with its raw bytes and where it came from."""

    raw: bytes  # the raw message, or its first `max_dead_letter_bytes` for oversized ones
    raw_size: int
    error: str
    stage: Literal["parse", "enrich"]
    ingested_at: datetime
    source_ref: str | None = None  # archive file for backfill rows
    source_row: int | None = None  # row number within that file
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None


class AlertRecord(BaseModel):
    """One row of LAKE/alerts: a negative-spike event for one key.

    One event, one alert: `alert_id` is fixed by the event's first window, and an escalation
    writes the same alert again with `revision` + 1 (the `alerts` view shows the latest)."""

    alert_id: str  # deterministic: key kind + key + bucket width + start of the event's first window
    key_kind: str  # ticker | topic | source | kind | all
    key: str
    bucket_width: str  # e.g. "1 hour"
    window_start: datetime
    window_end: datetime
    volume: int
    negatives: int
    observed_share: float
    baseline_share: float
    ratio: float
    delta: float
    z: float
    p_value: float
    severity: Literal["medium", "high", "critical"]
    example_ids: list[str]  # up to 5 of the most negative first reports behind the alert
    created_at: datetime
    # Added for issue #15 (null in older alert files):
    stories: int | None = None  # distinct negative stories in the window (copies count once)
    sources: int | None = None  # distinct sources of those negative posts
    posts: int | None = None  # negative posts in the window, copies included (buzz, not evidence)
    unit: str | None = None  # what volume/negatives count: "story" (default) or "post"
    revision: int | None = None  # 0 when first raised, +1 for each escalation of the same event


class PriceRecord(BaseModel):
    """One row of LAKE/prices: a company's (or a benchmark's) close on one trading day.

    Loaded from a user's file by `finpulse prices load` (pipeline/market/); keyed by (company, day),
    so loading a corrected file replaces the days it covers. The trading calendar the signal study
    uses is the set of days this table holds."""

    company: str  # company key (the gazetteer's: FB and META are META), or the benchmark's own ticker
    ticker: str  # as written in the file
    day: date  # the trading session (exchange-local date)
    close: float = Field(gt=0.0)  # adjusted close where the file has one, else the close
    adjusted: bool  # True when `close` is an adjusted close (dividends and splits folded in)
    volume: float | None = None
    kind: Literal["company", "benchmark"] = "company"  # benchmarks stay out of the equal-weighted market
    source: str  # the file it came from (its name)
    loaded_at: datetime
