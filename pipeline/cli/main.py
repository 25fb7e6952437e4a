"""The `finpulse` command: one click group, one sub-command per job (README's command reference).

This is the only place where an error becomes an exit status: library code raises a
`FinpulseError` (finpulse.schemas.errors) whose message says what to do, and the group prints it
and exits with the error's `exit_code` (1, 2 for usage, 75 when a restart fixes it).
"""

from __future__ import annotations

from typing import Any

import click

from finpulse.pipeline.cli.chaos import chaos
from finpulse.pipeline.cli.config import config_group
from finpulse.pipeline.cli.dashboard import bench_dashboard, dashboard
from finpulse.pipeline.cli.devtools import (
    bench,
    bench_int8,
    bench_lake,
    bench_precision,
    bench_stories,
    demo,
    gazetteer_group,
    realtext_eval,
    simulate_alerts,
)
from finpulse.pipeline.cli.market import compare_detectors, prices_group, signal
from finpulse.pipeline.cli.models import distill, evaluate, shrink, train
from finpulse.pipeline.cli.ops import lake_check, lake_group
from finpulse.pipeline.cli.pipeline import alerts, backfill, broker, produce, query, rescore, stream
from finpulse.pipeline.cli.quiet import quiet_foreign_noise
from finpulse.pipeline.cli.status import status
from finpulse.pipeline.cli.training import cards, refit_head, train_entity_head
from finpulse.schemas.errors import FinpulseError


class FinpulseGroup(click.Group):
    """A click group that turns a FinpulseError into `Error: message` on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FinpulseError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=FinpulseGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """finpulse: streaming financial opinion monitoring."""
    quiet_foreign_noise()  # before any command imports Beam


COMMANDS = (broker, produce, stream, backfill, query, rescore, alerts, status, lake_check, lake_group, dashboard, train,
            evaluate, shrink, distill, demo, bench, bench_precision, bench_dashboard, simulate_alerts, chaos,
            prices_group, signal, compare_detectors, config_group, refit_head, train_entity_head, cards,
            bench_int8, bench_stories, bench_lake, realtext_eval, gazetteer_group)
for command in COMMANDS:
    main.add_command(command)

if __name__ == "__main__":
    main()
