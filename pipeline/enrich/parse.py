"""Raw message -> InputRecord or DeadLetter. Pure: no Beam, no Kafka, testable on bytes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from pydantic import ValidationError

from finpulse.pipeline.messages import Coordinates
from finpulse.schemas.records import DeadLetter, InputRecord

MAX_DEAD_LETTER_BYTES = 64 * 1024  # oversized raw payloads are kept as a prefix of this size


def default_kind(topic: str | None, fallback: str = "news") -> str:
    """Kind from the topic name ('social-posts' -> social), else the fallback."""
    name = (topic or "").lower()
    if "social" in name:
        return "social"
    if "news" in name:
        return "news"
    return fallback


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def dead_letter(raw: bytes, error: str, stage: str, coords: Coordinates, now: datetime) -> DeadLetter:
    return DeadLetter(
        raw=raw[:MAX_DEAD_LETTER_BYTES],
        raw_size=len(raw),
        error=error,
        stage=stage,  # type: ignore[arg-type]
        ingested_at=now,
        source_ref=coords.source_ref,
        source_row=coords.source_row,
        kafka_topic=coords.topic,
        kafka_partition=coords.partition,
        kafka_offset=coords.offset,
    )


def _unencodable_field(record: InputRecord) -> str | None:
    """The first string field that cannot be encoded as UTF-8, or None.

    JSON may escape lone surrogates ("\\ud800"); Python decodes them into a str that Arrow,
    Parquet and the tokenizer all refuse, so one such message would crash every restart.
    """
    for name in ("id", "text", "source", "title", "url", "author", "lang"):
        value = getattr(record, name)
        if value is not None and not _utf8_ok(value):
            return name
    return next(("tickers" for t in record.tickers if not _utf8_ok(t)), None)


def _utf8_ok(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_message(
    raw: bytes | None,
    coords: Coordinates = Coordinates(),
    max_bytes: int = 1024 * 1024,
    fallback_kind: str = "news",
    now: datetime | None = None,
) -> InputRecord | DeadLetter:
    """Validate one raw message. Never raises: every failure becomes a DeadLetter saying why."""
    now = now or datetime.now(timezone.utc)
    raw = raw or b""

    def reject(error: str) -> DeadLetter:
        return dead_letter(raw, error, "parse", coords, now)

    if len(raw) > max_bytes:
        return reject(f"message is {len(raw):,} bytes, over the {max_bytes:,}-byte limit (kept: first {MAX_DEAD_LETTER_BYTES:,} bytes)")
    if not raw.strip():
        return reject("empty message")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject(f"not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return reject(f"not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return reject(f"expected a JSON object, got {type(obj).__name__}")
    try:
        record = InputRecord.model_validate(obj)
    except ValidationError as exc:
        return reject(f"invalid record: {_summarise(exc)}")
    except (ArithmeticError, ValueError) as exc:  # e.g. OverflowError converting 9999-12-31T23:59-14:00 to UTC
        return reject(f"invalid record: {type(exc).__name__}: {exc}")
    bad = _unencodable_field(record)
    if bad:
        return reject(f"invalid record: {bad} holds a lone UTF-16 surrogate escape (e.g. \\ud800), which is not text")
    if record.kind is None:
        record.kind = default_kind(coords.topic, fallback_kind)  # type: ignore[assignment]
    if record.published_at is None:
        ts = coords.timestamp_ms
        record.published_at = datetime.fromtimestamp(ts / 1000, timezone.utc) if ts else now
    return record
