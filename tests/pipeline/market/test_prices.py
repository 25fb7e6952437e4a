"""`finpulse prices load`: a user's price file checked row by row, keyed to company keys, merged into LAKE/prices."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
import pytest
from click.testing import CliRunner
from support.lakefixtures import post, write_posts

from finpulse.pipeline.cli import main
from finpulse.pipeline.enrich.companies import load_gazetteer
from finpulse.pipeline.lake.query import run_query
from finpulse.pipeline.market.prices import PriceFileError, find_gaps, parse_prices, read_table

GOOD = """ticker,date,close,adj_close,volume
AAPL,2025-01-02,243.85,242.75,55740700
AAPL,2025-01-03,243.36,242.26,40244100
FB,2021-10-27,312.22,311.00,
META,2021-10-28,316.92,315.70,1000
$msft,2025-01-02,418.58,416.12,16896500
"""


def parsed(text: str, tmp_path, **kw):
    path = tmp_path / "prices.csv"
    path.write_text(text)
    return parse_prices(read_table(path), load_gazetteer(), source=path.name, **kw)


def test_a_good_file_is_keyed_to_company_keys_with_the_adjusted_close(tmp_path):
    p = parsed(GOOD, tmp_path)
    assert p.problems == [] and p.rows == 5
    rows = p.table.to_pylist()
    assert [(r["company"], r["ticker"], r["day"], r["close"]) for r in rows] == [
        ("AAPL", "AAPL", date(2025, 1, 2), 242.75), ("AAPL", "AAPL", date(2025, 1, 3), 242.26),
        ("META", "FB", date(2021, 10, 27), 311.0), ("META", "META", date(2021, 10, 28), 315.7),
        ("MSFT", "MSFT", date(2025, 1, 2), 416.12)]
    assert all(r["adjusted"] and r["kind"] == "company" for r in rows)
    assert [r["volume"] for r in rows] == [55740700, 40244100, None, 1000, 16896500]


def test_every_bad_row_is_reported_with_its_row_number_and_the_rest_kept(tmp_path):
    p = parsed("""ticker,date,close
AAPL,2025-01-02,243.85
NOPE,2025-01-02,10
AAPL,02/01/2025,243
AAPL,2025-01-06,abc
AAPL,2025-01-07,0
AAPL,2025-01-08,-3
AAPL,2025-01-02,243.85
FB,2025-01-02,600
META,2025-01-02,601
MSFT,2025-01-03,420
""", tmp_path)
    got = [(x.kind, x.row) for x in p.problems if x.kind != "gap"]
    assert got == [("unknown_ticker", 2), ("bad_date", 3), ("bad_price", 4), ("non_positive_price", 5),
                   ("non_positive_price", 6), ("duplicate_day", 7), ("duplicate_day", 9)]
    assert p.rejected == 7 and p.table.num_rows == 3  # rows 1, 8 (FB = META, kept first) and 10
    dup = next(x for x in p.problems if x.row == 9)
    assert "META" in dup.message and "row 8 kept" in dup.message
    assert "--benchmark NOPE" in p.problems[0].message
    assert not p.table.column("adjusted").to_pylist()[0]  # no adjusted column: the close, marked as such
    report = p.report()
    assert report["problems"] == {"unknown_ticker": 1, "bad_date": 1, "bad_price": 1, "non_positive_price": 2,
                                  "duplicate_day": 2}
    assert len(report["details"]) == 7


def test_gaps_are_reported_and_reject_no_row():
    d = [date(2025, 1, k) for k in (2, 3, 6, 7, 8)]
    gaps = find_gaps(["AAPL"] * 5 + ["MSFT", "MSFT"], d + [d[0], d[4]])
    assert [(g.kind, g.ticker, g.day) for g in gaps] == [("gap", "MSFT", "2025-01-03")]
    assert "3 trading day(s) from 2025-01-03 to 2025-01-07" in gaps[0].message


def test_unusable_files_are_refused_with_the_expected_header(tmp_path):
    with pytest.raises(PriceFileError, match="ticker,date,close,adj_close,volume"):
        parsed("symbol,when,close\nAAPL,2025-01-02,1\n", tmp_path)
    with pytest.raises(PriceFileError, match="a ticker column"):
        parsed("date,close\n2025-01-02,1\n", tmp_path)
    (tmp_path / "prices.xlsx").write_text("x")
    with pytest.raises(PriceFileError, match="unsupported file type '.xlsx'; use .csv or .parquet"):
        read_table(tmp_path / "prices.xlsx")


def test_a_one_ticker_file_and_a_benchmark(tmp_path):
    p = parsed("Date,Open,High,Low,Close,Adj Close,Volume\n2025-01-02,1,2,0.5,1.5,1.4,100\n", tmp_path, ticker="SPY",
               benchmarks=["SPY"])
    assert p.problems == []
    assert p.table.to_pylist()[0] | {"loaded_at": None} == {
        "company": "SPY", "ticker": "SPY", "day": date(2025, 1, 2), "close": 1.4, "adjusted": True, "volume": 100.0,
        "kind": "benchmark", "source": "prices.csv", "loaded_at": None}


def test_parquet_files_with_date_and_timestamp_columns(tmp_path):
    import pyarrow.parquet as pq

    table = pa.table({"Symbol": ["AAPL", "AAPL"], "Date": pa.array([date(2025, 1, 2), date(2025, 1, 3)]),
                      "Close": [1.0, 2.0]})
    pq.write_table(table, tmp_path / "p.parquet")
    p = parse_prices(read_table(tmp_path / "p.parquet"), load_gazetteer())
    assert p.problems == [] and p.table.column("day").to_pylist() == [date(2025, 1, 2), date(2025, 1, 3)]


@pytest.fixture
def lake(tmp_path):
    root = tmp_path / "lake"
    write_posts(root, [post("p1", 0, "negative", ("AAPL",))])
    return root


def test_cli_refuses_a_file_with_bad_rows_and_loads_nothing(lake, tmp_path):
    (tmp_path / "bad.csv").write_text(GOOD + "NOPE,2025-01-02,1,1,1\n")
    result = CliRunner().invoke(main, ["prices", "load", "--lake", str(lake), "--file", str(tmp_path / "bad.csv"),
                                       "--report", str(tmp_path / "report.json")])
    assert result.exit_code == 1, result.output
    assert "1 of 6 rows" in result.output and "--skip-bad" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["loaded"] is None and report["details"][0]["kind"] == "unknown_ticker"
    assert run_query(lake, "select count(*) n from prices").to_pylist() == [{"n": 0}]


def test_cli_skip_bad_loads_the_rest_and_a_reload_replaces_instead_of_doubling(lake, tmp_path):
    (tmp_path / "bad.csv").write_text(GOOD + "NOPE,2025-01-02,1,1,1\n")
    args = ["prices", "load", "--lake", str(lake), "--file", str(tmp_path / "bad.csv"), "--skip-bad"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["loaded"]["inserted"] == 5
    (tmp_path / "fixed.csv").write_text(GOOD.replace("242.75", "242.80"))
    again = CliRunner().invoke(main, ["prices", "load", "--lake", str(lake), "--file", str(tmp_path / "fixed.csv")])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["loaded"] | {"version": None} == {"inserted": 0, "updated": 5, "version": None}
    rows = run_query(lake, "select company, day, close from prices order by company, day").to_pylist()
    assert len(rows) == 5 and rows[0]["close"] == 242.80


def test_cli_refuses_a_path_without_a_lake_and_bad_options(tmp_path):
    (tmp_path / "p.csv").write_text(GOOD)
    result = CliRunner().invoke(main, ["prices", "load", "--lake", str(tmp_path / "nowhere"), "--file",
                                       str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and "no finpulse lake at" in result.output and "--lake" in result.output
    result = CliRunner().invoke(main, ["prices", "load", "--lake", str(tmp_path), "--file", str(tmp_path / "p.csv"),
                                       "--benchmark", "SPY,QQQ"])
    assert result.exit_code == 2 and "--benchmark" in result.output and "'SPY,QQQ'" in result.output
    assert "e.g." in result.output
