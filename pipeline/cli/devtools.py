"""`finpulse bench | bench-precision | simulate-alerts | demo`: the developer tools' commands.

The tools themselves live in `finpulse.pipeline.devtools` and `finpulse.pipeline.alerts.simulate`;
their heavy imports stay inside each command so `finpulse --help` starts fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import click

from finpulse.pipeline.cli.options import COUNT, RATE, Device, Float, Int, Parsed, Port, device_option, precision_option


@click.command()
@click.option("--n", type=COUNT, default=2000, show_default=True, help="generated posts")
@device_option()
@precision_option()
@click.option("--no-e2e", is_flag=True, help="skip the Kafka -> lake run")
@click.option("--baseline-n", type=COUNT, default=2000, show_default=True, help="posts for the (slow) stock-Beam baseline")
@click.option("--quality-data", type=click.Path(path_type=Path, file_okay=False), default="../shared/data",
              show_default=True, help="labelled data for quality_delta (--precision vs fp32 on the held-out sets)")
@click.option("--json", "as_json", is_flag=True, help="JSON on one line (the default output is JSON too, indented)")
@click.option("--service", is_flag=True, help="instead: the service latencies (first commit on a backlog, steady "
              "send -> row and send -> alert, metrics cost); see devtools/service_bench.py")
@click.option("--rate", type=RATE, default=50.0, show_default=True,
              help="with --service: steady posts/s (below capacity)")
@click.option("--seconds", type=Float(min=0, min_open=True, example="60"), default=60.0, show_default=True,
              help="with --service: length of the steady feed")
def bench(n: int, device: str, precision: str, no_e2e: bool, baseline_n: int, quality_data: Path, as_json: bool,
          service: bool, rate: float, seconds: float) -> None:
    """Measure throughput and latency; prints one JSON object (its `precision`: what the engine ran at)."""
    if service:
        os.environ["FINPULSE_PRECISION"] = precision  # the `finpulse stream` processes it starts read it
        from finpulse.pipeline.devtools.service_bench import run_service_bench
        from finpulse.pipeline.jobs.stream import resolve_device

        result = run_service_bench(resolve_device(device), rate, seconds)
    else:
        from finpulse.pipeline.devtools.bench import run_bench

        result = run_bench(n, device, e2e=not no_e2e, baseline_n=baseline_n, quality_data=quality_data,
                           precision=precision)
    click.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@click.command(name="bench-precision")
@click.option("--device", type=Device(), default="cuda", show_default=True, help="cpu | cuda")
@click.option("--n", type=COUNT, default=40_000, show_default=True, help="generated posts")
def bench_precision(device: str, n: int) -> None:
    """Engine posts/s by precision path and batch cap, with label agreement against CPU fp32; one JSON object."""
    from finpulse.pipeline.devtools.bench_precision import compare_precisions

    click.echo(json.dumps(compare_precisions(device, n), indent=1))


def _detector_setting(item: str) -> tuple[str, object]:
    """One `FIELD=VALUE` for a DetectorConfig (tuples as comma lists, booleans as 0/1); ValueError says why."""
    from finpulse.pipeline.runtime.settings import DetectorConfig

    cfg = DetectorConfig()
    name, sep, value = item.partition("=")
    if not sep or not hasattr(cfg, name):
        raise ValueError(f"give FIELD=VALUE with a field of {', '.join(f.name for f in dataclasses.fields(cfg))}")
    current = getattr(cfg, name)
    parsed: object  # the field's own type
    try:
        if isinstance(current, tuple):
            parsed = tuple(int(v) for v in value.split(","))
        elif isinstance(current, bool):
            parsed = bool(int(value))
        else:
            parsed = type(current)(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a {type(current).__name__} (now {current!r})") from None
    return name, parsed


@click.command(name="simulate-alerts")
@click.option("--days", type=Int(min=1, example="30"), default=30, show_default=True)
@click.option("--tickers", type=Int(min=1, example="50"), default=50, show_default=True)
@click.option("--spikes-per-day", type=Float(min=0, example="10"), default=10.0, show_default=True)
@click.option("--decoys-per-day", type=Float(min=0, example="5"), default=5.0, show_default=True,
              help="with several seeds/alphas: neutral volume surges")
@click.option("--alpha", "alphas", type=Float(min=0, max=1, min_open=True, max_open=True, example="1e-4"), multiple=True,
              help="detector significance threshold; repeat it (or --seed) for the alpha trade-off table")
@click.option("--seed", "seeds", type=Int(example="2"), multiple=True, help="simulation seed (default 2); repeatable")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", type=Parsed(_detector_setting, "setting", "windows=1"),
              help="detector settings, e.g. windows=1 count_channel=0")
def simulate_alerts(days: int, tickers: int, spikes_per_day: float, decoys_per_day: float, alphas: tuple[float, ...],
                    seeds: tuple[int, ...], sets: tuple[tuple[str, object], ...]) -> None:
    """Labelled simulation of the spike detector: recall by spike size, false alarms a day, delay.

    One seed and at most one alpha: the full report of one world. Several: the trade-off table
    of docs/ALERTS.md (e.g. --seed 2 --seed 3 --seed 4 --alpha 1e-4 --alpha 1e-3)."""
    from finpulse.pipeline.runtime.settings import DetectorConfig
    from finpulse.pipeline.alerts.simulate import make_world, simulate, tradeoff

    cfg = dataclasses.replace(DetectorConfig(), **dict(sets))
    if len(seeds) > 1 or len(alphas) > 1:
        worlds = [make_world(days, tickers, spikes_per_day, decoys_per_day, seed=s) for s in (seeds or (2,))]
        click.echo(json.dumps(tradeoff(worlds, list(alphas or (cfg.alpha,)), cfg), indent=1))
        return
    if alphas:
        cfg = dataclasses.replace(cfg, alpha=alphas[0])
    click.echo(json.dumps(simulate(days, tickers, spikes_per_day, seed=seeds[0] if seeds else 2, cfg=cfg), indent=2))


@click.command()
@click.option("--lake", type=click.Path(path_type=Path, file_okay=False), default=Path("demo-lake"), show_default=True,
              help="the demo's own lake (not FINPULSE_LAKE: the demo starts it afresh)")
@click.option("--posts", type=COUNT, default=3000, show_default=True, help="background posts (plus one injected event)")
@click.option("--rate", type=RATE, default=200.0, show_default=True, help="posts per second")
@click.option("--port", type=Port(), default=None, help="broker port (default: a free one)")
@click.option("--dashboard-port", type=Port(allow_zero=True), default=8501, show_default=True,
              help="serve the dashboard on 127.0.0.1 while the demo runs (and after it, in a terminal); 0 = no dashboard")
def demo(lake: Path, posts: int, rate: float, port: int | None, dashboard_port: int) -> None:
    """Run broker, sample feed, stream, alerts, dashboard and a DuckDB summary on embedded defaults."""
    from finpulse.pipeline.devtools.demo import run_demo

    run_demo(lake, posts, rate, port, dashboard_port or None)
