"""Arrow schemas derived from the pydantic models, so the Parquet layout is never written twice."""

from __future__ import annotations

import types
import typing
from datetime import date, datetime
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel

from finpulse.schemas.records import AlertRecord, DeadLetter, EnrichedRecord, PriceRecord

_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    bytes: pa.binary(),
    datetime: pa.timestamp("us", tz="UTC"),
    date: pa.date32(),
}


def arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """(arrow type, nullable) for a pydantic field annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        inner, _ = arrow_type(args[0] if len(args) == 1 else args[0])
        return inner, True
    if origin is Literal:
        return arrow_type(type(get_args(annotation)[0]))[0], False
    if origin is list:
        item, _ = arrow_type(get_args(annotation)[0])
        return pa.list_(item), False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct(model_fields(annotation)), False
    if annotation in _SCALARS:
        return _SCALARS[annotation], False
    # typing aliases such as `Kind` resolve to Literal above; anything else is a schema bug.
    raise TypeError(f"no Arrow type for {annotation!r}")


def model_fields(model: type[BaseModel]) -> list[pa.Field]:
    hints = typing.get_type_hints(model)
    out = []
    for name in model.model_fields:
        typ, nullable = arrow_type(hints[name])
        out.append(pa.field(name, typ, nullable=nullable))
    return out


@cache
def schema_for(model: type[BaseModel]) -> pa.Schema:
    return pa.schema(model_fields(model))


ENRICHED_SCHEMA = schema_for(EnrichedRecord)
DEADLETTER_SCHEMA = schema_for(DeadLetter)
ALERT_SCHEMA = schema_for(AlertRecord)
PRICES_SCHEMA = schema_for(PriceRecord)
