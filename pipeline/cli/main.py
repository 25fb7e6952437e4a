"""The `finpulse` command: one group, one sub-command per job (see README for the reference)."""

from __future__ import annotations

import click

from finpulse.dashboard.serve import bench_dashboard, dashboard
from finpulse.pipeline.cli.models import evaluate, train
from finpulse.pipeline.cli.ops import COMMANDS as OPS_COMMANDS
from finpulse.pipeline.cli.pipeline import alerts, backfill, broker, produce, query, rescore, stream
from finpulse.pipeline.devtools.demo import demo


@click.command()
@click.option("--n", type=int, default=2000, show_default=True, help="generated posts")
@click.option("--device", default="auto", show_default=True)
@click.option("--no-e2e", is_flag=True, help="skip the Kafka -> lake run")
@click.option("--baseline-n", type=int, default=2000, show_default=True, help="posts for the (slow) stock-Beam baseline")
@click.option("--quality-data", type=click.Path(path_type=__import__("pathlib").Path), default="../shared/data",
              show_default=True, help="labelled data for quality_delta (fast path vs fp32 on the held-out sets)")
@click.option("--json", "as_json", is_flag=True, help="JSON only (the default output is JSON too, indented)")
def bench(n: int, device: str, no_e2e: bool, baseline_n: int, quality_data, as_json: bool) -> None:
    """Measure throughput and latency; prints one JSON object."""
    import json

    from finpulse.pipeline.devtools.bench import run_bench

    result = run_bench(n, device, e2e=not no_e2e, baseline_n=baseline_n, quality_data=quality_data)
    click.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """finpulse: streaming financial opinion monitoring."""


@click.command(name="simulate-alerts")
@click.option("--days", type=int, default=30, show_default=True)
@click.option("--tickers", type=int, default=50, show_default=True)
@click.option("--spikes-per-day", type=float, default=10.0, show_default=True)
@click.option("--alpha", type=float, default=None, help="detector significance threshold (default: the detector's)")
@click.option("--seed", type=int, default=2, show_default=True)
def simulate_alerts(days: int, tickers: int, spikes_per_day: float, alpha: float | None, seed: int) -> None:
    """Labelled simulation of the spike detector: recall by spike size, false alarms a day, delay."""
    import dataclasses
    import json

    from finpulse.pipeline.alerts.simulate import simulate
    from finpulse.pipeline.alerts.detector import DetectorConfig

    cfg = DetectorConfig() if alpha is None else dataclasses.replace(DetectorConfig(), alpha=alpha)
    click.echo(json.dumps(simulate(days, tickers, spikes_per_day, seed=seed, cfg=cfg), indent=2))


for command in (broker, produce, stream, backfill, query, rescore, alerts, train, evaluate, demo, bench, simulate_alerts, dashboard, bench_dashboard, *OPS_COMMANDS):
    main.add_command(command)

if __name__ == "__main__":
    main()
