"""`finpulse prices load`, `finpulse signal` and `finpulse compare-detectors`: prices beside sentiment."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from finpulse.pipeline.cli.options import Int, IsoTime, Ticker, lake_option, parse_time


def _period(since: str | datetime | None, until: str | datetime | None,
            names: tuple[str, str] = ("--since", "--until")):
    start, end = parse_time(since, names[0]), parse_time(until, names[1])
    if start is not None and end is not None and start >= end:
        raise click.BadParameter(f"{end.isoformat()!r} is not after {names[0]} {start.isoformat()!r} "
                                 f"(e.g. {names[0]} 2025-01-01 "
                                 f"{names[1]} 2025-07-01)", param_hint=names[1])
    return start, end


@click.group(name="prices")
def prices_group() -> None:
    """Daily prices in the lake (the `prices` table the signal study reads)."""


@prices_group.command(name="load")
@lake_option()
@click.option("--file", "file_", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a .csv or .parquet file: ticker,date,close[,adj_close][,volume] (e.g. prices.csv)")
@click.option("--ticker", type=Ticker(), default=None,
              help="the ticker of a one-ticker file without a ticker column (e.g. AAPL)")
@click.option("--benchmark", "benchmarks", multiple=True, type=Ticker(),
              help="a ticker outside the company gazetteer to load under its own name, e.g. SPY for "
                   "`finpulse signal --benchmark SPY` (repeat for several)")
@click.option("--skip-bad", is_flag=True,
              help="load the usable rows even if some rows were rejected (they stay listed in the report)")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the full report (every rejected row and gap) to this JSON file")
def prices_load(lake: str, file_: Path, ticker: str | None, benchmarks: tuple[str, ...], skip_bad: bool,
                report_file: Path | None) -> None:
    """Check a daily price file and merge it into the lake's `prices` table, keyed by company and day.

    Tickers map to company keys through the gazetteer (FB and META are one company). Unknown
    tickers, bad dates or prices, non-positive prices and duplicate days reject their rows, gaps are
    reported; all of it in the printed report. With any rejected row nothing is loaded unless
    --skip-bad says so. No download: docs/ANALYTICS.md lists free sources of such files."""
    from finpulse.pipeline.enrich.companies import load_gazetteer
    from finpulse.pipeline.market.load import load_prices, require_lake
    from finpulse.pipeline.market.prices import parse_prices, read_table

    if ticker is not None and not ticker.strip().lstrip("$"):
        raise click.BadParameter(f"{ticker!r} is not a ticker (e.g. --ticker AAPL)", param_hint="--ticker")
    for b in benchmarks:
        if not b.strip().lstrip("$") or "," in b:
            raise click.BadParameter(f"{b!r} is not one ticker (e.g. --benchmark SPY, repeated for several)",
                                     param_hint="--benchmark")
    require_lake(lake)  # before reading a large file for nothing
    parsed = parse_prices(read_table(file_), load_gazetteer(), source=file_.name, ticker=ticker, benchmarks=benchmarks)
    report = parsed.report()
    blocked = parsed.rejected > 0 and not skip_bad
    report["loaded"] = None if blocked else load_prices(lake, parsed)
    text = json.dumps(report, indent=2, default=str)
    if report_file is not None:
        report_file.write_text(text + "\n")
    click.echo(text)
    if blocked:
        raise click.ClickException(f"{parsed.rejected} of {parsed.rows} rows of {file_} were rejected (listed above"
                                   f"{' and in ' + str(report_file) if report_file else ''}); nothing was loaded. "
                                   "Fix the file, or load the usable rows with --skip-bad")


@click.command(name="signal")
@lake_option()
@click.option("--since", type=IsoTime(), default=None, help="posts from this ISO time (e.g. 2025-01-01)")
@click.option("--until", type=IsoTime(), default=None, help="... until this ISO time (e.g. 2025-07-01)")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--bucket", type=click.Choice(["day", "week"]), default="day", show_default=True,
              help="the IC's period: trading sessions, or ISO weeks of them (horizons then count weeks)")
@click.option("--benchmark", type=Ticker(), default=None,
              help="abnormal returns against this loaded benchmark (e.g. SPY) instead of the equal-weighted market")
@click.option("--unit", type=click.Choice(["story", "post"]), default="story", show_default=True,
              help="count each near-duplicate story once per company, or every post")
@click.option("--min-names", type=click.IntRange(min=3), default=5, show_default=True,
              help="companies a session's cross-section needs before its IC counts")
def signal(lake: str, since: str | None, until: str | None, fmt: str, bucket: str, benchmark: str | None, unit: str,
           min_names: int) -> None:
    """Does sentiment mean anything for prices? IC by horizon and the event study of alerts.

    Per company and trading session (posts after the 16:00 New York close count for the next
    session): the mean daily Spearman IC of sentiment, story volume and negative share against
    abnormal returns at horizons 0, 1 and 5, with t-statistics; and the mean CAR over [-1,+1] and
    [+1,+5] after the lake's alerts by severity, beside all company-days. Needs `finpulse prices load`."""
    from finpulse.pipeline.market.study import SignalSettings, format_report, run_signal

    start, end = _period(since, until)
    if benchmark is not None and (not benchmark.strip().lstrip("$") or "," in benchmark):
        raise click.BadParameter(f"{benchmark!r} is not one ticker (e.g. --benchmark SPY)", param_hint="--benchmark")
    report = run_signal(lake, SignalSettings(since=start, until=end, bucket=bucket, benchmark=benchmark, unit=unit,
                                             min_names=min_names))
    click.echo(json.dumps(report, indent=2) if fmt == "json" else format_report(report))


@click.command(name="compare-detectors")
@lake_option(help="a lake with posts and prices (or, with --synthetic, a new folder to write one into)")
@click.option("--choose-since", type=IsoTime(), default=None,
              help="the period the alternative is chosen on (e.g. 2025-01-01)")
@click.option("--choose-until", type=IsoTime(), default=None, help="... its end (e.g. 2025-07-01)")
@click.option("--confirm-since", type=IsoTime(), default=None,
              help="the period the figures are reported on (e.g. 2025-07-01)")
@click.option("--confirm-until", type=IsoTime(), default=None, help="... its end (e.g. 2026-01-01)")
@click.option("--synthetic", is_flag=True,
              help="first write a synthetic universe with a planted effect into the (new) --lake; the periods "
                   "default to its first and second half. Synthetic: shows the procedure, not real markets")
@click.option("--seed", type=Int(example="7"), default=7, show_default=True, help="with --synthetic")
def compare_detectors(lake: str, choose_since: str | None, choose_until: str | None, confirm_since: str | None,
                      confirm_until: str | None, synthetic: bool, seed: int) -> None:
    """Alert settings judged by the prices after the alerts: chosen on one period, reported on another.

    Runs the detector's defaults and alternatives (window, floor, bucket, story or post counting),
    without recording alerts, and prints the event study of each; the alternative with the most
    negative t of CAR[+1,+5] on the choosing period is reported on the confirming period beside
    the defaults. A decision to change defaults needs this on real posts and prices."""
    from finpulse.pipeline.devtools.signal_choice import compare_detectors as compare
    from finpulse.pipeline.devtools.signal_choice import synthetic_universe
    from finpulse.pipeline.lake import tables
    from finpulse.pipeline.market.load import require_lake
    from finpulse.pipeline.market.sessions import EXCHANGE_TZ

    given = [choose_since, choose_until, confirm_since, confirm_until]
    universe = None
    if synthetic:
        if tables.exists(lake) or tables.open_table(lake, "prices") is not None:
            raise click.BadParameter(f"{lake!r} already holds a lake; --synthetic writes a new one "
                                     "(e.g. --lake /tmp/synthetic-lake)", param_hint="--lake")
        universe = synthetic_universe(lake, seed=seed)
    else:
        require_lake(lake)
        if None in given:
            raise click.UsageError("give both periods: --choose-since/--choose-until and --confirm-since/"
                                   "--confirm-until (e.g. 2025-01-01 2025-07-01 2025-07-01 2026-01-01)")
    if universe is not None and None in given:
        from datetime import time as dtime
        from zoneinfo import ZoneInfo

        cal = universe.calendar
        edges = [cal[0], cal[len(cal) // 2], cal[-1]]
        at = [datetime.combine(d, dtime(16), ZoneInfo(EXCHANGE_TZ)) for d in edges]
        choose, confirm = (at[0], at[1]), (at[1], at[2])
    else:
        choose = _period(choose_since, choose_until, ("--choose-since", "--choose-until"))
        confirm = _period(confirm_since, confirm_until, ("--confirm-since", "--confirm-until"))
    try:
        result = compare(lake, choose, confirm)  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if universe is not None:
        result["synthetic"] = {"companies": len(universe.companies), "sessions": len(universe.calendar),
                               "posts": universe.posts, "seed": seed,
                               "note": "a synthetic universe with a planted effect: it shows the procedure finds "
                                       "what was planted, not how real markets behave"}
    click.echo(json.dumps(result, indent=2, default=str))
