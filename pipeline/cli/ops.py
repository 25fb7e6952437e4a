"""`finpulse lake-check` and `finpulse lake optimize|migrate`: the operations commands."""

from __future__ import annotations

import json

import click

from finpulse.pipeline.cli.options import SECONDS, lake_option, require_lake


@click.command(name="lake-check")
@lake_option(existing=True)
@click.option("--quarantine", "move", is_flag=True, help="move unreadable files to LAKE/_quarantine/ (with the reason)")
def lake_check(lake: str, move: bool) -> None:
    """Read every Parquet file of the lake's tables; report (and optionally quarantine) the unreadable ones.

    Queries already skip unreadable files with a warning; quarantining removes the warning and
    keeps the file for inspection. Exits 1 if bad files remain in place.
    """
    from finpulse.pipeline.lake.faults import check_files, quarantine

    bad = check_files(lake)
    moved = quarantine(lake, bad) if move else []
    click.echo(json.dumps({"bad_files": [{"file": str(f), "problem": p} for f, p in bad],
                           "quarantined": [str(m) for m in moved]}, indent=2))
    if bad and not move:
        click.get_current_context().exit(1)


@click.group(name="lake")
def lake_group() -> None:
    """Maintenance of the lake's Delta tables (compaction, migration)."""


@lake_group.command(name="optimize")
@lake_option(existing=True)
@click.option("--retention-hours", type=SECONDS, default=None,
              help="vacuum data files that left the tables more than this long ago (default 1)")
@click.option("--cluster", is_flag=True,
              help="rewrite every file in time order (z-order by the time column) instead of merging small files")
def lake_optimize(lake: str, retention_hours: float | None, cluster: bool) -> None:
    """Compact each table's small files, then vacuum old ones; prints files before/after per table.

    Safe while a stream or backfill writes (compaction never conflicts with appends) and while
    queries run (vacuum keeps files younger than the retention)."""
    from finpulse.pipeline.lake.maintenance import DEFAULT_RETENTION_HOURS, optimize

    require_lake(lake)  # compacting nothing is a mistaken --lake, not an empty success
    retention = DEFAULT_RETENTION_HOURS if retention_hours is None else retention_hours
    click.echo(json.dumps(optimize(lake, retention, cluster=cluster), indent=2))


@lake_group.command(name="migrate")
@lake_option(help="lake directory or object-store URL of the previous layout", existing=True)
def lake_migrate(lake: str) -> None:
    """Bring a lake of an older layout to the current one, keeping every row once and each
    source's position: Parquet files with _staging/ and _progress/ become Delta tables, and
    Delta tables partitioned by day are rewritten unpartitioned in time order (one commit per
    table; queries keep working meanwhile). Refuses to run when there is nothing to migrate."""
    from finpulse.pipeline.lake.migrate import MigrationError, migrate
    from finpulse.pipeline.lake.relayout import day_partitioned, relayout

    report: dict = {}
    try:
        report = migrate(lake)
    except MigrationError:
        if not day_partitioned(lake):
            raise  # a LakeError: exit 1
    report["relayout"] = relayout(lake, progress=lambda line: click.echo(line, err=True))
    click.echo(json.dumps(report, indent=2, default=str))
