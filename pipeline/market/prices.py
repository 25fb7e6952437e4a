"""A user's daily price file, read and checked before it reaches the lake. Pure (no lake, no network).

finpulse downloads nothing: users bring prices from their vendor or a free source (docs/ANALYTICS.md
lists some) as CSV or Parquet, one row per ticker and trading day, in the long format most sources
export:

    ticker,date,close,adj_close,volume        (a one-ticker file without `ticker`: `--ticker AAPL`)

Column names are matched loosely (case, spaces and dashes ignored): the ticker is `ticker`, `symbol`
or `company`; the day is `date` or `day` (a timestamp's date part is taken as written, i.e. the
exchange's local date); the price is the adjusted close (`adj_close`, `adjusted_close`, `adjclose`)
where the file has one, else `close`: adjusted prices fold dividends and splits in, so a split is
not a -50% day. `volume` is optional.

Tickers map to company keys through the same gazetteer the pipeline links posts with
(enrich/companies.py), so a file quoting FB before 2022 and META after fills one company, META, and
joins the rows' `companies`. A ticker the gazetteer does not know is refused, unless it is named as
a benchmark (an index fund such as SPY for `finpulse signal --benchmark SPY`), which keeps its own
name and stays out of the equal-weighted market.

Nothing is dropped silently. Each row that cannot be used is in the report with its row number and
why: unknown ticker, unparseable day, missing, non-numeric or non-positive price, or a second row
for a company and day it already has (the first is kept; FB and META on the same day are such a
pair). Gaps are reported too: a day the file's calendar has (another ticker traded) between a
company's first and last day, with no row for that company. A gap rejects no row; the study leaves
out the return across it rather than count a multi-day move as one day's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import pyarrow as pa

from finpulse.pipeline.enrich.companies import Gazetteer
from finpulse.schemas.arrow import PRICES_SCHEMA
from finpulse.schemas.errors import FinpulseError, UsageError

TICKER_COLUMNS = ("ticker", "symbol", "company")
DATE_COLUMNS = ("date", "day")
ADJUSTED_COLUMNS = ("adj_close", "adjusted_close", "adjclose", "adj_close_price")
CLOSE_COLUMNS = ("close", "close_price", "price")
VOLUME_COLUMNS = ("volume", "vol")
EXAMPLE_HEADER = "ticker,date,close,adj_close,volume"
KINDS = ("unknown_ticker", "bad_date", "bad_price", "non_positive_price", "duplicate_day", "gap")
BLOCKING = frozenset(KINDS) - {"gap"}  # kinds that reject their row


class PriceFileError(FinpulseError, ValueError):
    """The price file cannot be read as prices at all (missing, wrong format, no usable columns)."""


@dataclass(frozen=True)
class Problem:
    kind: str  # one of KINDS
    row: int | None  # 1-based data row of the file (the header is row 0); None for a gap
    ticker: str
    day: str
    message: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "row": self.row, "ticker": self.ticker, "day": self.day, "message": self.message}


@dataclass
class PriceFile:
    """The accepted rows (PRICES_SCHEMA) and every problem found, in file order."""

    source: str
    rows: int  # data rows read
    table: pa.Table
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(1 for p in self.problems if p.kind in BLOCKING)

    def report(self) -> dict:
        """What `finpulse prices load` prints: counts, coverage and every problem."""
        days = self.table.column("day").to_pylist() if self.table.num_rows else []
        counts = {k: sum(1 for p in self.problems if p.kind == k) for k in KINDS}
        return {"file": self.source, "rows": self.rows, "accepted": self.table.num_rows, "rejected": self.rejected,
                "companies": len(set(self.table.column("company").to_pylist())) if self.table.num_rows else 0,
                "first_day": str(min(days)) if days else None, "last_day": str(max(days)) if days else None,
                "problems": {k: v for k, v in counts.items() if v},
                "details": [p.as_dict() for p in self.problems]}


def _norm(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").replace(".", " ").split())


def _pick(columns: Sequence[str], wanted: Iterable[str]) -> str | None:
    by_norm = {_norm(c): c for c in columns}
    return next((by_norm[w] for w in wanted if w in by_norm), None)


def read_table(path: str | Path) -> pa.Table:
    """The file as an Arrow table (CSV or Parquet by extension); a clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise PriceFileError(f"price file {path} does not exist; pass a .csv or .parquet file with {EXAMPLE_HEADER}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise PriceFileError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    raise PriceFileError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet (columns {EXAMPLE_HEADER})")


def _day(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text[:10]) if len(text) >= 10 else None
        except ValueError:
            return None
    return None


def _price(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return None
    return None


def normalise_ticker(ticker: str) -> str:
    """'$brk-b ' -> 'BRK.B': the gazetteer's form (enrich/companies.py, Gazetteer.company_key)."""
    return ticker.strip().lstrip("$").upper().replace("-", ".")


def parse_prices(
    table: pa.Table,
    gazetteer: Gazetteer,
    source: str = "prices",
    ticker: str | None = None,
    benchmarks: Sequence[str] = (),
    loaded_at: datetime | None = None,
) -> PriceFile:
    """Check `table` (a price file read by `read_table`) and key it to company keys.

    `ticker`: the ticker of a one-ticker file without a ticker column. `benchmarks`: tickers outside
    the gazetteer to keep under their own name (kind "benchmark")."""
    loaded_at = loaded_at or datetime.now(timezone.utc)
    cols = table.column_names
    tcol, dcol = _pick(cols, TICKER_COLUMNS), _pick(cols, DATE_COLUMNS)
    acol, ccol, vcol = _pick(cols, ADJUSTED_COLUMNS), _pick(cols, CLOSE_COLUMNS), _pick(cols, VOLUME_COLUMNS)
    pcol = acol or ccol
    missing = [what for what, col in (("a date column (date)", dcol), ("a price column (adj_close or close)", pcol))
               if col is None]
    if tcol is None and ticker is None:
        missing.insert(0, "a ticker column (ticker, symbol or company), or --ticker for a one-ticker file")
    if missing:
        raise PriceFileError(f"{source}: no {', no '.join(missing)} among the columns {cols}; "
                             f"expected a header like {EXAMPLE_HEADER}")
    if tcol is not None and ticker is not None:
        raise UsageError(f"{source} has a ticker column ({tcol!r}); --ticker is only for files without one")
    n = table.num_rows
    tickers = table.column(tcol).to_pylist() if tcol else [ticker] * n
    days = table.column(dcol).to_pylist()
    prices = table.column(pcol).to_pylist()
    volumes = table.column(vcol).to_pylist() if vcol else [None] * n
    bench = {normalise_ticker(b) for b in benchmarks}
    keys: dict[str, str | None] = {}
    problems: list[Problem] = []
    first_row: dict[tuple[str, date], int] = {}
    out: dict[str, list] = defaultdict(list)
    for i in range(n):
        row = i + 1
        raw = "" if tickers[i] is None else str(tickers[i])
        t = normalise_ticker(raw)
        day = _day(days[i])
        shown_day = str(day) if day else str(days[i])
        if t not in keys:
            keys[t] = t if t in bench else gazetteer.by_ticker.get(t)
        key = keys[t]
        if not t or key is None:
            problems.append(Problem("unknown_ticker", row, raw, shown_day,
                                    f"row {row}: ticker {raw!r} is not in the company gazetteer; fix the ticker, or "
                                    f"name it as a benchmark (--benchmark {t or 'SPY'}) to keep it under its own name"))
            continue
        if day is None:
            problems.append(Problem("bad_date", row, raw, shown_day,
                                    f"row {row}: date {days[i]!r} is not a date; use YYYY-MM-DD (e.g. 2024-01-02)"))
            continue
        price = _price(prices[i])
        if price is None or math.isnan(price) or math.isinf(price):
            problems.append(Problem("bad_price", row, raw, shown_day,
                                    f"row {row}: {pcol} {prices[i]!r} is not a number"))
            continue
        if price <= 0:
            problems.append(Problem("non_positive_price", row, raw, shown_day,
                                    f"row {row}: {pcol} {price!r} is not positive (a price must be > 0)"))
            continue
        earlier = first_row.get((key, day))
        if earlier is not None:
            problems.append(Problem("duplicate_day", row, raw, shown_day,
                                    f"row {row}: a second price for company {key} on {day} "
                                    f"(row {earlier} kept; FB and META are one company)"))
            continue
        first_row[(key, day)] = row
        volume = _price(volumes[i])
        out["company"].append(key)
        out["ticker"].append(t)
        out["day"].append(day)
        out["close"].append(price)
        out["adjusted"].append(acol is not None)
        out["volume"].append(volume if volume is not None and not math.isnan(volume) else None)
        out["kind"].append("benchmark" if t in bench else "company")
        out["source"].append(source)
        out["loaded_at"].append(loaded_at)
    accepted = pa.Table.from_pydict({f.name: out.get(f.name, []) for f in PRICES_SCHEMA}, schema=PRICES_SCHEMA)
    problems.extend(find_gaps(out["company"], out["day"]))
    return PriceFile(source, n, accepted, problems)


def find_gaps(companies: Sequence[str], days: Sequence[date]) -> list[Problem]:
    """Runs of calendar days (days on which any company has a price) missing between a company's
    first and last day, one problem per run."""
    calendar = sorted(set(days))
    index = {d: i for i, d in enumerate(calendar)}
    held: dict[str, set[int]] = defaultdict(set)
    for c, d in zip(companies, days, strict=True):
        held[c].add(index[d])
    problems = []
    for company in sorted(held):
        have = sorted(held[company])
        for a, b in zip(have, have[1:], strict=False):
            if b - a > 1:
                first, last, count = calendar[a + 1], calendar[b - 1], b - a - 1
                problems.append(Problem("gap", None, company, str(first),
                                        f"{company}: no price on {count} trading day(s) from {first} to {last} "
                                        f"(other tickers trade then); the return across the gap is left out"))
    return problems
