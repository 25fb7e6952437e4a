"""Enriched rows for the lake: one Arrow table per bundle (the hot path), and one validated row (the spec).

Why two. The lake wants Arrow; the pipeline used to build one pydantic `EnrichedRecord` per post
(validate, `model_dump`, then `Table.from_pylist` turned the dicts back into columns): three object
trees per post, on the host side that binds on a GPU (issue #18). `enriched_table` builds each
column once for a whole bundle, nested columns (entities, per-company sentiment, probabilities)
from flat value lists and offsets, and enforces the schema's invariants with vectorised Arrow
checks over the batch (`violations`), derived from the same pydantic models, so there is still one
schema definition. A row that breaks one is reported with the reason and becomes a dead letter,
as a failed pydantic validation did.

`enriched_row` is the per-row path: a pydantic-validated dict. It is the readable specification the
columnar path is tested against (same feed, same rows, every column: tests/pipeline/enrich/test_rows.py), what
`rescore` writes, and the fallback when a bundle's columns cannot be built at all (then every row
is validated on its own, so one bad row costs only itself).

Story columns (`story_id`, `copies_seen`, `novelty`) stay null here: they depend on the posts seen
before, and are set by one stateful step before the commit (jobs/transforms.py).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from annotated_types import Ge, Le
from pydantic import BaseModel

from finpulse.models.engine.inference import Prediction
from finpulse.pipeline.enrich.companies import company_mentions, load_gazetteer
from finpulse.pipeline.enrich.per_company import company_sentiment
from finpulse.pipeline.messages import Coordinates
from finpulse.pipeline.runtime.stages import stage
from finpulse.schemas.arrow import ENRICHED_SCHEMA
from finpulse.schemas.records import EnrichedRecord, InputRecord

_ENTITY_FIELDS = ("text", "type", "start", "end", "score")
_COMPANY_FIELDS = ("ticker", "text", "start", "end", "sentiment", "score", "relevance")


def linked(record: InputRecord, pred: Prediction) -> tuple[list[str], list[str], list[dict] | None]:
    """(tickers, companies, per-company sentiment) of one post: the input's own tickers, then cashtags
    and Reuters codes, then names linked through the gazetteer; per-company sentiment is None when
    the registry has no entity_sentiment head."""
    gazetteer = load_gazetteer()
    with stage("linking"):
        tickers, companies = company_mentions(record.text, pred.entities, gazetteer, record.tickers)
        per_company = None if pred.mentions is None else company_sentiment(record.text, pred.mentions, gazetteer)
    return tickers, companies, per_company


def enriched_row(record: InputRecord, pred: Prediction, model_version: str, coords: Coordinates,
                 now: datetime | None = None) -> dict:
    """One enriched row as a dict, validated by the pydantic model (raises on a violation)."""
    now = now or datetime.now(timezone.utc)
    tickers, companies, per_company = linked(record, pred)
    row = EnrichedRecord(
        id=record.id,
        kind=record.kind or "news",
        source=record.source,
        published_at=record.published_at or now,
        ingested_at=now,
        title=record.title,
        text=record.text,
        url=record.url,
        author=record.author,
        lang=record.lang,
        tickers=tickers,
        companies=companies,
        sentiment=pred.sentiment,  # type: ignore[arg-type]
        sentiment_score=pred.sentiment_score,
        sentiment_probs=pred.sentiment_probs,  # type: ignore[arg-type]
        topic=pred.topic,
        topic_score=pred.topic_score,
        entities=[{name: getattr(e, name) for name in _ENTITY_FIELDS} for e in pred.entities],  # type: ignore[misc]
        entity_sentiment=per_company,  # type: ignore[arg-type]
        model_version=model_version,
        kafka_topic=coords.topic,
        kafka_partition=coords.partition,
        kafka_offset=coords.offset,
    )
    return row.model_dump()


def enriched_table(records: Sequence[InputRecord], preds: Sequence[Prediction], model_version: str,
                   coords: Sequence[Coordinates], now: datetime | None = None) -> tuple[pa.Table, dict[int, str]]:
    """A bundle's enriched rows as one Arrow table of the lake schema, and the rows that break the
    schema's invariants (row index -> reason): the caller dead-letters those and keeps the rest.

    Raises (pyarrow's ArrowInvalid or TypeError) only when a column cannot be built at all, e.g. a
    value of the wrong type; the caller then falls back to `enriched_row`, row by row."""
    now = now or datetime.now(timezone.utc)
    n = len(records)
    links = [linked(r, p) for r, p in zip(records, preds, strict=True)]
    cols: dict[str, pa.Array] = {
        "id": pa.array([r.id for r in records], pa.string()),
        "kind": pa.array([r.kind or "news" for r in records], pa.string()),
        "source": pa.array([r.source for r in records], pa.string()),
        "published_at": pa.array([r.published_at or now for r in records], _type("published_at")),
        "ingested_at": pa.array([now] * n, _type("ingested_at")),
        "title": pa.array([r.title for r in records], pa.string()),
        "text": pa.array([r.text for r in records], pa.string()),
        "url": pa.array([r.url for r in records], pa.string()),
        "author": pa.array([r.author for r in records], pa.string()),
        "lang": pa.array([r.lang for r in records], pa.string()),
        "tickers": pa.array([t for t, _, _ in links], _type("tickers")),
        "sentiment": pa.array([p.sentiment for p in preds], pa.string()),
        "sentiment_score": pa.array([p.sentiment_score for p in preds], pa.float64()),
        "sentiment_probs": _probs([p.sentiment_probs for p in preds], _type("sentiment_probs")),
        "topic": pa.array([p.topic for p in preds], pa.string()),
        "topic_score": pa.array([p.topic_score for p in preds], pa.float64()),
        "entities": _entities(preds),
        "entity_sentiment": _per_company([c for _, _, c in links]),
        "model_version": pa.array([model_version] * n, pa.string()),
        "kafka_topic": pa.array([c.topic for c in coords], pa.string()),
        "kafka_partition": pa.array([c.partition for c in coords], pa.int64()),
        "kafka_offset": pa.array([c.offset for c in coords], pa.int64()),
        "companies": pa.array([c for _, c, _ in links], _type("companies")),
    }
    missing = pa.nulls(n)
    table = pa.Table.from_arrays([cols[f.name] if f.name in cols else missing.cast(f.type) for f in ENRICHED_SCHEMA],
                                 schema=ENRICHED_SCHEMA)
    return table, violations(table)


def _type(name: str) -> pa.DataType:
    return ENRICHED_SCHEMA.field(name).type


def _probs(dicts: Sequence[dict[str, float] | None], struct: pa.DataType) -> pa.Array:
    """dicts of the three label probabilities -> one struct array of type `struct` (None stays null)."""
    mask = pa.array([d is None for d in dicts]) if any(d is None for d in dicts) else None
    fields = [pa.array([None if d is None else d[f.name] for d in dicts], f.type) for f in struct]
    return pa.StructArray.from_arrays(fields, fields=list(struct), mask=mask)


def _list_of_structs(lengths: Sequence[int | None], fields: dict[str, pa.Array], item: pa.DataType) -> pa.Array:
    """A list<struct> column from flat per-field arrays and per-row lengths (None: a null list)."""
    struct = pa.StructArray.from_arrays(list(fields.values()), fields=list(item))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum([n or 0 for n in lengths], out=offsets[1:])
    nulls = [n is None for n in lengths]
    mask = pa.array(nulls) if any(nulls) else None
    return pa.ListArray.from_arrays(pa.array(offsets), struct, mask=mask)


def _entities(preds: Sequence[Prediction]) -> pa.Array:
    item = _type("entities").value_type
    flat = [e for p in preds for e in p.entities]
    fields = {name: pa.array([getattr(e, name) for e in flat], item.field(name).type) for name in _ENTITY_FIELDS}
    return _list_of_structs([len(p.entities) for p in preds], fields, item)


def _per_company(rows: Sequence[list[dict] | None]) -> pa.Array:
    item = _type("entity_sentiment").value_type
    flat = [c for cs in rows if cs is not None for c in cs]
    fields = {name: pa.array([c[name] for c in flat], item.field(name).type) for name in _COMPANY_FIELDS}
    fields["probs"] = _probs([c["probs"] for c in flat], item.field("probs").type)
    ordered = {f.name: fields[f.name] for f in item}
    return _list_of_structs([None if cs is None else len(cs) for cs in rows], ordered, item)


# -- the schema's invariants, checked over a whole batch ------------------------------------------
def violations(table: pa.Table, model: type[BaseModel] = EnrichedRecord) -> dict[int, str]:
    """Rows of `table` that `model` would refuse (row index -> first reason), checked column-wise:
    required values present, Literal values allowed, `ge`/`le` bounds held (NaN fails them, as in
    pydantic), at every depth of the nested lists and structs. Derived from the pydantic model, so
    the lake schema is still defined once."""
    bad: dict[int, str] = {}
    rows = np.arange(table.num_rows)
    hints = _hints(model)
    for name, info in model.model_fields.items():
        column = table.column(name).combine_chunks() if table.num_rows else pa.array([], table.schema.field(name).type)
        _check(column, rows, hints[name], info.metadata, name, bad)
    return bad


@cache
def _hints(model: type[BaseModel]) -> dict[str, Any]:
    """The model's resolved annotations (typing.get_type_hints is slow: once per model, not per bundle)."""
    return typing.get_type_hints(model)


def _check(values: pa.Array, rows: np.ndarray, annotation: Any, metadata: list, path: str, bad: dict[int, str]) -> None:
    inner, nullable = _unwrap_optional(annotation)
    if not nullable:
        _flag(pc.is_null(values), rows, f"{path} is missing", bad)
    present = pc.is_valid(values)
    if get_origin(inner) is Literal:
        allowed = pa.array(get_args(inner), values.type)
        _flag(pc.and_(present, pc.invert(pc.is_in(values, value_set=allowed))), rows,
              f"{path} must be one of {', '.join(map(str, get_args(inner)))}", bad)
    for bound in metadata:
        if isinstance(bound, Ge | Le):
            op, word = (pc.greater_equal, ">=") if isinstance(bound, Ge) else (pc.less_equal, "<=")
            ok = op(values, pa.scalar(bound.ge if isinstance(bound, Ge) else bound.le, values.type))
            _flag(pc.and_(present, pc.invert(pc.fill_null(ok, False))), rows,
                  f"{path} must be {word} {bound.ge if isinstance(bound, Ge) else bound.le}", bad)
    if get_origin(inner) is list:
        item = get_args(inner)[0]
        if isinstance(item, type) and issubclass(item, BaseModel):
            flat = pc.list_flatten(values)
            parents = rows[pc.list_parent_indices(values).to_numpy(zero_copy_only=False)]
            _check_model(flat, parents, item, f"{path}[]", bad)
    elif isinstance(inner, type) and issubclass(inner, BaseModel):
        _check_model(values, rows, inner, path, bad)


def _check_model(values: pa.Array, rows: np.ndarray, model: type[BaseModel], path: str, bad: dict[int, str]) -> None:
    hints = _hints(model)
    for name, info in model.model_fields.items():
        _check(pc.struct_field(values, name), rows, hints[name], info.metadata, f"{path}.{name}", bad)


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(get_args(annotation))
    return annotation, False


def _flag(mask: pa.Array, rows: np.ndarray, reason: str, bad: dict[int, str]) -> None:
    if not mask.true_count:  # the usual case: nothing to convert
        return
    for i in np.flatnonzero(mask.to_numpy(zero_copy_only=False)):
        bad.setdefault(int(rows[i]), reason)
