"""`finpulse lake-check`: the operations commands."""

from __future__ import annotations

import json

import click

from finpulse.pipeline.cli.options import lake_option


@click.command(name="lake-check")
@lake_option(help="local lake directory")
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
