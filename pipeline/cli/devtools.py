"""`finpulse bench | bench-precision | simulate-alerts | demo | bench-int8 | bench-stories | bench-lake |
realtext-eval | gazetteer build`: the developer tools' commands.

The tools themselves live in `finpulse.pipeline.devtools` and `finpulse.pipeline.alerts.simulate`;
their heavy imports stay inside each command so `finpulse --help` starts fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import click

from finpulse.pipeline.cli.options import (
    COUNT,
    DEFAULT_DATA,
    RATE,
    Choices,
    Device,
    Float,
    Int,
    Parsed,
    Port,
    Registry,
    device_option,
    precision_option,
    profile_env_option,
    registry_option,
)


@click.command()
@click.option("--n", type=COUNT, default=2000, show_default=True, help="generated posts")
@registry_option()
@device_option()
@precision_option()
@click.option("--no-e2e", is_flag=True, help="skip the Kafka -> lake run")
@click.option("--baseline-n", type=COUNT, default=2000, show_default=True, help="posts for the (slow) stock-Beam baseline")
@click.option("--quality-data", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_DATA,
              show_default=True, help="labelled data for quality_delta (--precision vs fp32 on the held-out sets)")
@click.option("--json", "as_json", is_flag=True, help="JSON on one line (the default output is JSON too, indented)")
@click.option("--service", is_flag=True, help="instead: the service latencies (first commit on a backlog, steady "
              "send -> row and send -> alert, metrics cost); see devtools/service_bench.py")
@click.option("--rate", type=RATE, default=50.0, show_default=True,
              help="with --service: steady posts/s (below capacity)")
@click.option("--seconds", type=Float(min=0, min_open=True, example="60"), default=60.0, show_default=True,
              help="with --service: length of the steady feed")
@click.option("--scale", is_flag=True, help="instead: rows/s of one backlog (--n posts) with 1, 2 and 3 stream "
              "processes in a consumer group and 1 and 3 Dask workers; see devtools/bench_scale.py")
@click.option("--versus", type=Registry(), default=None,
              help="instead: the engine alone with this registry and the command's (--registry/--profile) taking "
                   "turns on the held-out TFNS texts of --quality-data (else --n generated posts); core-ms per "
                   "post, medians and their ratio")
@click.option("--reps", type=Int(min=1, example="4"), default=4, show_default=True,
              help="with --versus: timed passes of each, taking turns")
def bench(n: int, profile: str | None, registry: str | None, device: str, precision: str, no_e2e: bool,
          baseline_n: int, quality_data: Path, as_json: bool,
          service: bool, rate: float, seconds: float, scale: bool, versus: str | None, reps: int) -> None:
    """Measure throughput and latency; prints one JSON object (its `precision`: what the engine ran at)."""
    from finpulse.models.artifacts.profiles import chosen_registry

    # every model load of the run, the stream processes it starts included, reads the profile's registry
    chosen = chosen_registry(registry, profile, device)
    os.environ["FINPULSE_REGISTRY"] = chosen
    if versus:
        from finpulse.pipeline.devtools.bench import engine_turns, versus_texts
        from finpulse.pipeline.jobs.stream import resolve_device

        result = engine_turns(versus_texts(quality_data, n), chosen, versus,
                              resolve_device(device), precision, reps)
    elif scale:
        from finpulse.pipeline.devtools.bench_scale import run as run_scale

        result = run_scale(n)
    elif service:
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
@profile_env_option()
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
    from finpulse.pipeline.alerts.simulate import make_world, simulate, tradeoff
    from finpulse.pipeline.runtime.settings import DetectorConfig

    overrides: dict[str, Any] = dict(sets)
    cfg = dataclasses.replace(DetectorConfig(), **overrides)
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
@profile_env_option()
def demo(lake: Path, posts: int, rate: float, port: int | None, dashboard_port: int) -> None:
    """Run broker, sample feed, stream, alerts, dashboard and a DuckDB summary on embedded defaults."""
    from finpulse.pipeline.devtools.demo import run_demo

    run_demo(lake, posts, rate, port, dashboard_port or None)


# -- measurements on real data and the reference data's builder --------------------------------------------------

DATA_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
POSITIVE = Float(min=0, min_open=True, example="1")


def _int8_paths() -> tuple[str, ...]:
    from finpulse.pipeline.devtools.bench_int8 import PATHS

    return PATHS


@click.command(name="bench-int8")
@click.option("--n", type=COUNT, default=2000, show_default=True, help="generator posts per run")
@click.option("--seed", type=Int(example="11"), default=11, show_default=True, help="seed of the generator posts")
@click.option("--reps", type=Int(min=0, example="3"), default=3, show_default=True,
              help="timed runs per path, the paths taking turns (the median counts); 0 skips the timing")
@click.option("--data", type=DATA_DIR, default=None,
              help=f"held-out sets for the quality section (default: {DEFAULT_DATA} when present, else no quality)")
@registry_option()
@click.option("--threads", type=Int(min=1, example="2"), default=None,
              help="torch and ONNX Runtime intra-op threads (default: torch's)")
@click.option("--stability", type=Choices(_int8_paths, allow_empty=True), default="ort_int8,torch_fp32",
              show_default=True, help="paths whose labels are compared batched against one post at a time")
@click.option("--paths", type=Choices(_int8_paths), default=None,
              help="engine paths to time, comma-separated (default: all; torch_bf16 only with native bf16)")
@click.option("--no-calibration-sources", is_flag=True, help="skip the calibration-text comparison")
@click.option("--no-avx2-estimate", is_flag=True, help="skip the fbgemm-based estimate for AVX2-only CPUs")
def bench_int8(n: int, seed: int, reps: int, data: Path | None, profile: str | None, registry: str | None,
               threads: int | None,
               stability: tuple[str, ...], paths: tuple[str, ...] | None, no_calibration_sources: bool,
               no_avx2_estimate: bool) -> None:
    """The static-int8 CPU path beside fp32 and bf16: posts/s, label stability, held-out quality; one JSON object."""
    from finpulse.pipeline.devtools.bench_int8 import run

    if data is None and Path(DEFAULT_DATA).is_dir():
        data = Path(DEFAULT_DATA)
    from finpulse.models.artifacts.profiles import chosen_registry

    result = run(n, seed, reps, data, chosen_registry(registry, profile, "cpu"), threads, list(stability),
                 not no_calibration_sources,
                 not no_avx2_estimate, list(paths) if paths else None)
    click.echo(json.dumps(result, indent=2))


@click.command(name="bench-stories")
@click.option("--data", type=DATA_DIR, default=DEFAULT_DATA, show_default=True,
              help="folder holding tfns_sentiment_train.csv and sentfin_entity_train.jsonl (the real texts)")
@click.option("--n", type=COUNT, default=2000, show_default=True, help="texts for the cost figures")
@click.option("--per-day", type=COUNT, default=20000, show_default=True, help="posts a day in the simulated week")
@click.option("--device", type=Device(), default="cpu", show_default=True, help="device of the models in `cost`")
@profile_env_option()
def bench_stories(data: Path, n: int, per_day: int, device: str) -> None:
    """What story de-duplication and company linking cost beside the models, a week's memory, de-dup P/R; JSON."""
    from finpulse.pipeline.devtools.bench_stories import run

    click.echo(json.dumps(run(data, n, per_day, device), indent=2))


@click.command(name="realtext-eval")
@click.option("--data", type=DATA_DIR, default=DEFAULT_DATA, show_default=True,
              help="folder holding tfns_sentiment_train.csv and sentfin_entity_train.jsonl (the real texts)")
@click.option("--days", type=Int(min=1, example="60"), default=60, show_default=True, help="length of the timeline")
@click.option("--rate", type=Float(min=0, min_open=True, example="2"), default=2.0, show_default=True,
              help="background posts an hour per company")
@click.option("--seed", type=Int(example="3"), default=3, show_default=True, help="seed of the timeline")
@profile_env_option()
def realtext_eval(data: Path, days: int, rate: float, seed: int) -> None:
    """Alerts on real text with copies and spam: events found, alerts resting on copies, false alarms; JSON."""
    from finpulse.pipeline.devtools.realtext import run

    click.echo(json.dumps(run(data, days, rate, seed), indent=2))


@click.group(name="gazetteer")
def gazetteer_group() -> None:
    """The company gazetteer (pipeline/enrich/reference/companies.csv)."""


@gazetteer_group.command(name="build")
@click.option("--data", type=DATA_DIR, default=DEFAULT_DATA, show_default=True,
              help="folder holding sec_company_tickers.csv and sp500_constituents.csv")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="file to write (default: the package's pipeline/enrich/reference/companies.csv)")
def gazetteer_build(data: Path, out: Path | None) -> None:
    """Build the company gazetteer from the SEC and S&P 500 lists and the overrides; one JSON line of counts."""
    from finpulse.pipeline.devtools.gazetteer import DEFAULT_GAZETTEER, rebuild

    click.echo(json.dumps(rebuild(data, out or DEFAULT_GAZETTEER)))


# Which parameters each bench-lake mode takes (pipeline/devtools/lakebench.py: `run`, `run_archive`);
# the defaults are the functions' own, so they are said once, there.
LAKE_MODES = {"stream": ("hours", "small_hours", "commits", "rate", "flush_s", "optimize_every"),
              "archive": ("years", "rows_per_day", "chunk", "stream_minutes", "rate", "flush_s", "optimize_every")}


@click.command(name="bench-lake")
@click.option("--mode", type=click.Choice(sorted(LAKE_MODES)), default="stream", show_default=True,
              help="stream: commit latency and reads at stream scale; archive: years of backfilled rows, "
                   "day partitions against the current layout")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("/tmp/finpulse-lakebench"),
              show_default=True, help="scratch folder for the lakes (emptied first)")
@click.option("--hours", type=POSITIVE, default=None, help="stream: hours of data (default 24)")
@click.option("--small-hours", type=POSITIVE, default=None,
              help="stream: hours of the uncompacted one-file-per-flush table (default 1)")
@click.option("--commits", type=COUNT, default=None, help="stream: commits timed for the latency (default 300)")
@click.option("--years", type=POSITIVE, default=None, help="archive: years of rows (default 5)")
@click.option("--rows-per-day", type=POSITIVE, default=None, help="archive: rows a day (default 133)")
@click.option("--chunk", type=COUNT, default=None, help="archive: rows per backfill commit (default 2000)")
@click.option("--stream-minutes", type=POSITIVE, default=None,
              help="archive: minutes of a stream for its files per hour (default 30)")
@click.option("--rate", type=RATE, default=None, help="posts/s of the stream (default 30)")
@click.option("--flush-s", type=POSITIVE, default=None, help="seconds between the stream's commits (default 1)")
@click.option("--optimize-every", type=POSITIVE, default=None,
              help="seconds between background compactions (default 600)")
def bench_lake(mode: str, workdir: Path, **given: float | int | None) -> None:
    """Read and commit costs of the Delta lake at stream scale or over an archive; one JSON object."""
    from finpulse.pipeline.devtools import lakebench

    kwargs = {k: v for k, v in given.items() if v is not None}
    other = sorted(set(kwargs) - set(LAKE_MODES[mode]))
    if other:
        raise click.UsageError(f"--{other[0].replace('_', '-')} is not a parameter of --mode {mode}")
    bench = lakebench.run_archive if mode == "archive" else lakebench.run
    click.echo(json.dumps(bench(workdir, **kwargs), indent=2))  # type: ignore[arg-type]
