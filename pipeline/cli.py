"""The `finpulse` command: one group, one sub-command per job (see README for the reference)."""

from __future__ import annotations

import click

from finpulse.pipeline.cli_models import evaluate, train
from finpulse.pipeline.cli_pipeline import backfill, broker, produce, query, stream
from finpulse.pipeline.demo import demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """finpulse: streaming financial opinion monitoring."""


for command in (broker, produce, stream, backfill, query, train, evaluate, demo):
    main.add_command(command)

if __name__ == "__main__":
    main()
