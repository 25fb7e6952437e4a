"""`finpulse chaos ...`: reliability runs against a real broker and real processes (docs/RELIABILITY.md).

The harnesses live in `finpulse.pipeline.devtools.chaos`; this module only parses arguments and
turns a run that lost, duplicated or invented rows into exit status 1.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from finpulse.pipeline.cli.options import COUNT, RATE, SECONDS, Choices, Float, HostPorts, Int, profile_env_option
from finpulse.pipeline.devtools.chaos import (
    ALL_KILL_POINTS,
    KILL_POINTS,
    flow_run,
    install_kill_point,
    kill_run,
    outage_run,
)

MINUTES = Float(min=0, min_open=True, example="10")
EVERY = Float(min=0, min_open=True, example="10")


def _workdir(path: str | None, name: str) -> Path:
    d = Path(path) if path else Path(tempfile.mkdtemp(prefix=f"finpulse-{name}-"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _with_broker(bootstrap: str | None, workdir: Path, run: Callable[[str], dict]) -> dict:
    if bootstrap:
        return run(bootstrap)
    from finpulse.infra.broker import EmbeddedBroker

    with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
        return run(broker.bootstrap)


def _emit(result: dict, workdir: Path) -> None:
    result["workdir"] = str(workdir)
    (workdir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps(result, indent=2))
    if result.get("lost") or result.get("duplicated") or result.get("unexpected"):
        click.get_current_context().exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@profile_env_option("the stream processes of every run")
def chaos() -> None:
    """Reliability runs against a real broker and real stream processes (see docs/RELIABILITY.md)."""
    # SIGTERM unwinds like Ctrl-C, so the stream process and the embedded broker are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@chaos.command()
@click.option("--kills", type=Int(min=0, example="20"), default=20, show_default=True,
              help="random SIGKILLs (after one at each kill point)")
@click.option("--posts", type=COUNT, default=12000, show_default=True)
@click.option("--rate", type=RATE, default=40.0, show_default=True, help="posts/s produced while killing")
@click.option("--seed", type=Int(example="1"), default=1, show_default=True)
@click.option("--points", type=Choices(KILL_POINTS, allow_empty=True), default=",".join(KILL_POINTS), show_default=True,
              help="kill points to hit first ('' for none)")
@click.option("--bootstrap", type=HostPorts(many=True), default=None, help="an existing broker (default: an embedded one)")
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
def kill(kills: int, posts: int, rate: float, seed: int, points: str, bootstrap: str | None, workdir: str | None) -> None:
    """SIGKILL the stream at each kill point and at random moments while producing; check exactly-once."""
    wd = _workdir(workdir, "kill")
    inject = tuple(points)  # checked by click (Choices)
    _emit(_with_broker(bootstrap, wd, lambda b: kill_run(b, wd, kills, posts, rate, seed, inject=inject)), wd)


@chaos.command()
@click.option("--seconds", type=SECONDS, default=60.0, show_default=True)
@click.option("--posts", type=COUNT, default=600, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
def outage(seconds: float, posts: int, workdir: str | None) -> None:
    """Stop the embedded broker for a while mid-stream, restart it, produce more; check exactly-once."""
    wd = _workdir(workdir, "outage")
    _emit(outage_run(wd, seconds, posts), wd)


def _flow(name: str, minutes: float, rate: float, every: float, bootstrap: str | None, workdir: str | None) -> None:
    wd = _workdir(workdir, name)
    _emit(_with_broker(bootstrap, wd, lambda b: flow_run(b, wd, minutes * 60, rate, every, f"{name}-feed")), wd)


@chaos.command()
@click.option("--minutes", type=MINUTES, default=10.0, show_default=True)
@click.option("--rate", type=RATE, default=1000.0, show_default=True, help="posts/s offered (above capacity)")
@click.option("--every", type=EVERY, default=10.0, show_default=True, help="seconds between samples")
@click.option("--bootstrap", type=HostPorts(many=True), default=None)
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
def load(minutes: float, rate: float, every: float, bootstrap: str | None, workdir: str | None) -> None:
    """Produce faster than the stream can enrich; memory must stay bounded and the lag drain."""
    _flow("load", minutes, rate, every, bootstrap, workdir)


@chaos.command()
@click.option("--minutes", type=MINUTES, default=60.0, show_default=True)
@click.option("--rate", type=RATE, default=30.0, show_default=True, help="posts/s (below capacity)")
@click.option("--every", type=EVERY, default=60.0, show_default=True, help="seconds between samples")
@click.option("--bootstrap", type=HostPorts(many=True), default=None)
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
def soak(minutes: float, rate: float, every: float, bootstrap: str | None, workdir: str | None) -> None:
    """A steady feed for a long time; RSS, open files and throughput every --every seconds."""
    _flow("soak", minutes, rate, every, bootstrap, workdir)


@chaos.command(context_settings={"ignore_unknown_options": True})
@click.option("--at", "point", type=click.Choice(ALL_KILL_POINTS), required=True,
              help="stream kill points, or alert-write / alert-deliver inside `finpulse alerts`")
@click.option("--after", type=Int(min=1, example="1"), default=1, show_default=True, help="die on this occurrence")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def inject(point: str, after: int, args: tuple[str, ...]) -> None:
    """Run a finpulse command (after --) that SIGKILLs itself at a kill point."""
    from finpulse.pipeline.cli.main import main

    install_kill_point(point, after)
    main(list(args))
