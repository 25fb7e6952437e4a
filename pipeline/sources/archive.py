"""Archive readers for backfill: JSONL, CSV and Parquet rows as raw JSON messages. Pure I/O, no Beam."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def archive_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unsupported archive type {suffix!r}; use .jsonl, .csv or .parquet")
    return FORMATS[suffix]


def archive_key(path: str | Path) -> str:
    """Progress key of an archive file: stable for the same absolute path."""
    resolved = str(Path(path).resolve())
    return "file." + hashlib.sha1(resolved.encode()).hexdigest()[:16]


def _json_default(v: object) -> str:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    return str(v)


def _csv_row(row: dict[str, str]) -> bytes:
    obj: dict[str, object] = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
    tickers = obj.get("tickers")
    if isinstance(tickers, str):  # "AAPL,MSFT" or "AAPL MSFT"
        obj["tickers"] = [t for t in tickers.replace(",", " ").split() if t]
    return json.dumps(obj).encode()


def iter_rows(path: str | Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(row index, raw message) from row `start` on. Bad rows are passed through for dead-lettering."""
    fmt = archive_format(path)
    if fmt == "jsonl":
        with open(path, "rb") as fh:
            i = 0
            for line in fh:
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                if i >= start:
                    yield i, line
                i += 1
    elif fmt == "csv":
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                if i >= start:
                    try:
                        yield i, _csv_row(row)
                    except UnicodeEncodeError:
                        yield i, json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogateescape")
    else:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        i = 0
        for batch in pf.iter_batches(batch_size=2048):
            for row in batch.to_pylist():
                if i >= start:
                    clean = {k: v for k, v in row.items() if v is not None}
                    yield i, json.dumps(clean, default=_json_default).encode()
                i += 1


def count_rows(path: str | Path) -> int:
    fmt = archive_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return sum(1 for _ in iter_rows(path))
