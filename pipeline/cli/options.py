"""Options and helpers every command shares, declared once (sqlite-utils' shared decorators are the model).

`--lake`, `--registry`, `--device`, `--precision`, `--bootstrap` and `-v` mean the same thing, with
the same default and the same environment variable, on every command that takes them. Values from
the environment are read here, by click, and nowhere else in the CLI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LAKE = "lake"
PRECISIONS = ["auto", "fp32", "bf16", "int8"]  # the engine's (models/engine/inference.py, pick_precision)
TRAINING_PRECISIONS = ["auto", "fp32", "bf16"]  # int8 is an inference-only path


def lake_option(help: str = "lake directory or object-store URL (s3://bucket/path?endpoint_override=..., gs://...)") -> Callable[[F], F]:
    return click.option("--lake", envvar="FINPULSE_LAKE", default=DEFAULT_LAKE, show_default=True, show_envvar=True,
                        help=help)


def registry_option() -> Callable[[F], F]:
    return click.option("--registry", envvar="FINPULSE_REGISTRY", default=None, show_envvar=True, type=Registry(),
                        help="model registry: a JSON file, or a shipped name: default | accurate (mpnet sentiment, for GPUs)")


def device_option() -> Callable[[F], F]:
    return click.option("--device", envvar="FINPULSE_DEVICE", default="auto", show_default=True, show_envvar=True,
                        help="auto | cpu | cuda")


def precision_option(training: bool = False) -> Callable[[F], F]:
    """--precision for the engine (`training=True`: for `finpulse train`, which has no int8 path)."""
    help = "auto: bf16 on CUDA and on CPUs with native bf16 (AMX/AVX512-BF16), else fp32"
    if not training:
        help += ". int8 (CPU only, asked for): static int8 ONNX Runtime encoders, built once into the cache"
    return click.option("--precision", envvar="FINPULSE_PRECISION", default="auto", show_default=True,
                        type=click.Choice(TRAINING_PRECISIONS if training else PRECISIONS), show_envvar=True,
                        help=help)


def bootstrap_option(help: str = "Kafka bootstrap host:port[,host:port]") -> Callable[[F], F]:
    return click.option("--bootstrap", envvar="FINPULSE_KAFKA_BOOTSTRAP", default=None, show_envvar=True, help=help)


def metrics_options(fn: F) -> F:
    """--metrics-port / --metrics-host, shared by stream, backfill and alerts (see runtime/metrics.py)."""
    fn = click.option("--metrics-host", default=None,
                      help="address for the metrics server (default 127.0.0.1; 0.0.0.0 exposes it)")(fn)
    return click.option("--metrics-port", type=int, default=None,
                        help="serve Prometheus /metrics, /healthz and /readyz on this port (off by default)")(fn)


def verbose_option() -> Callable[[F], F]:
    return click.option("-v", "--verbose", is_flag=True, help="log every commit (DEBUG)")


def workers_option() -> Callable[[F], F]:
    return click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                        help="SDK worker processes on the local runner, each with its own model copy on CPU "
                             "(on CUDA they share one); partitions and files are split between them")


def shared_model_option() -> Callable[[F], F]:
    return click.option("--shared-model/--model-per-process", "shared_model", default=None,
                        help="with --workers N: one model copy served to every worker process (Beam's shared-model "
                             "path; the default on CUDA, one copy in GPU memory) or one copy in each process (the "
                             "default on CPU, each on its own cores)")


def worker_args(workers: int, beam_args: Sequence[str]) -> list[str]:
    """Beam arguments for `--workers N` on the local runner, plus the user's own after `--`.

    Several processes are how the host side (parsing, tokenising, linking, row building: Python,
    one GIL each) scales with cores. Each process gets cores / N PyTorch threads unless
    OMP_NUM_THREADS says otherwise, so N processes do not fight over the same cores, and OpenMP
    threads that sleep when idle (OMP_WAIT_POLICY=PASSIVE unless set): GNU OpenMP's threads spin
    after every forward call by default, taking the core another process's tokenising and row
    building want (end to end with two workers on two cores: faster in all four alternating
    pairs measured, docs/SCALING.md). One process keeps the default, where spinning won 7-10%.
    An explicit --direct_num_workers after `--` wins.
    """
    args = list(beam_args)
    if workers <= 1 or any(a.startswith("--direct_num_workers") for a in args):
        return args
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))  # the workers inherit it
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing", *args]


def setup_logging(verbose: bool = False) -> None:
    """finpulse's own lines at INFO (DEBUG with -v: every commit); libraries at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("finpulse").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # our own lines say what we wait for
    logging.getLogger("apache_beam").setLevel(logging.WARNING)


def validated(cls: type, **kwargs: Any) -> Any:
    """A settings object; a bad value from a flag, the environment or a secrets file is a usage error, not a traceback."""
    from pydantic import ValidationError

    try:
        return cls(**kwargs)
    except ValidationError as exc:
        raise click.UsageError(f"invalid {cls.__name__}: " + "; ".join(e["msg"] for e in exc.errors())) from None


def parse_time(value: str | None, option: str = "--since") -> datetime | None:
    """An ISO-8601 time from a flag (naive means UTC), or a usage error that shows the expected form."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time (e.g. 2026-11-02T09:00:00Z)", param_hint=option) from None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts
