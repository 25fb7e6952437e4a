"""Options and helpers every command shares, declared once (sqlite-utils' shared decorators are the model).

`--lake`, `--registry`, `--device`, `--precision`, `--bootstrap` and `-v` mean the same thing, with
the same default and the same environment variable, on every command that takes them. Values from
the environment are read here, by click, and nowhere else in the CLI.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LAKE = "lake"
DEFAULT_DATA = "../shared/data"  # the labelled and reference data sets (their README lists sources and licences)
PRECISIONS = ["auto", "fp32", "bf16", "int8"]  # the engine's (models/engine/inference.py, pick_precision)
TRAINING_PRECISIONS = ["auto", "fp32", "bf16"]  # int8 is an inference-only path


# -- value types -------------------------------------------------------------------------------
# Every option that takes a value checks it here, while click parses the command line: a bad value
# is one line, `Error: Invalid value for '--option': 'value' ... (e.g. a good one)`, exit 2, before
# any model loads, broker starts or lake file is written (tests/pipeline/cli/test_cli_values.py walks every
# command with bad values for each option). `example` is the good value the message shows.


class _Example(click.ParamType):
    """A type whose errors end with an example of a good value."""

    example = ""

    def fail(self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None) -> Any:
        super().fail(f"{message} (e.g. {self.example})" if self.example else message, param, ctx)


class Int(_Example, click.IntRange):
    """An integer, optionally bounded: counts, sizes, seeds, ports."""

    def __init__(self, min: int | None = None, max: int | None = None, example: str | None = None) -> None:
        click.IntRange.__init__(self, min=min, max=max)
        self.name = "integer"
        self.example = example or str(min if min is not None and min > 0 else 1)


class Float(_Example, click.FloatRange):
    """A finite number, optionally bounded (rates, seconds, thresholds): nan and inf are refused."""

    def __init__(self, min: float | None = None, max: float | None = None, min_open: bool = False,
                 max_open: bool = False, example: str = "1.5") -> None:
        click.FloatRange.__init__(self, min=min, max=max, min_open=min_open, max_open=max_open)
        self.name = "number"
        self.example = example

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def Port(allow_zero: bool = False) -> Int:  # noqa: N802 - reads as a type, like click.IntRange
    """A TCP port (0: allow "none"/"any", where the option says so)."""
    return Int(0 if allow_zero else 1, 65535, example="9092")


RATE = Float(min=0, min_open=True, example="200")  # per second
SECONDS = Float(min=0, example="60")
COUNT = Int(min=1, example="2000")


class BucketWidth(_Example):
    """`--bucket`: N second|minute|hour|day[s] (the alert series' bucket width)."""

    name = "bucket width"
    example = "'1 hour' or '15 minutes'"
    _FORM = re.compile(r"\s*([0-9]+)\s+(second|minute|hour|day)s?\s*", re.IGNORECASE)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        m = self._FORM.fullmatch(str(value))
        if not m or int(m.group(1)) < 1:
            self.fail(f"{value!r} is not N second|minute|hour|day[s] with N >= 1", param, ctx)
        return value


class Choices(_Example):
    """A comma-separated list of names from a fixed set (key kinds, kill points); returns a tuple.
    `choices` may be a function, so a library's list is imported only when a value is checked."""

    name = "list"

    def __init__(self, choices: Sequence[str] | Callable[[], Sequence[str]], allow_empty: bool = False) -> None:
        self._choices, self.allow_empty = choices, allow_empty

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._choices() if callable(self._choices) else self._choices)

    def fail(self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None) -> Any:
        self.example = ",".join(self.choices[:2])
        return super().fail(message, param, ctx)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        items = tuple(v.strip() for v in str(value).split(",") if v.strip())
        bad = [v for v in items if v not in self.choices]
        if bad or (not items and not self.allow_empty):
            self.fail(f"{value!r}: {', '.join(map(repr, bad)) or 'nothing'} is not one of {', '.join(self.choices)}",
                      param, ctx)
        return items


def _key_kinds() -> Sequence[str]:
    from finpulse.pipeline.alerts.evaluate import KEY_KINDS

    return KEY_KINDS


KEY_KINDS = Choices(_key_kinds)  # --keys of alerts


class IsoTime(_Example):
    """An ISO-8601 time (naive means UTC); returns an aware datetime."""

    name = "time"
    example = "2026-11-02T09:00:00Z"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            ts = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 time", param, ctx)
        return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


class AsOf(_Example):
    """`--as-of`: TABLE@VERSION (a version of that table) or an ISO time for every table (lake/tables.py)."""

    name = "as-of"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from finpulse.pipeline.lake.tables import parse_as_of

        if not isinstance(value, str):
            return value
        try:
            return parse_as_of(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


REMOTE_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")  # the object stores delta-rs and pyarrow open


def holds_lake(path: Path) -> bool:
    """A local folder holds a lake: a table's Delta log, or the previous layout's folders."""
    from finpulse.pipeline.lake.tables import REFERENCE_SCHEMAS, SCHEMAS

    return (any((path / t / "_delta_log").is_dir() for t in (*SCHEMAS, *REFERENCE_SCHEMAS))
            or (path / "_staging").is_dir() or (path / "_progress").is_dir())


class LakeLocation(_Example):
    """`--lake`: a directory or an object-store URL. `existing`: the command reads a lake, so a local
    path that holds none is an error here (an object store is asked when the command opens it)."""

    name = "lake"
    example = "lake, /data/lake or s3://bucket/lake"

    def __init__(self, existing: bool = False) -> None:
        self.existing = existing

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if not text.strip():
            self.fail("an empty path", param, ctx)
        if "://" in text and not text.startswith("file://"):
            parts = urlsplit(text)
            if parts.scheme not in REMOTE_SCHEMES or not parts.netloc:
                self.fail(f"{text!r} is not a folder or an object-store URL ({', '.join(REMOTE_SCHEMES)}://bucket/path)",
                          param, ctx)
            return text
        path = Path(text.removeprefix("file://"))
        if path.exists() and not path.is_dir():
            self.fail(f"{text!r} is a file, not a lake folder", param, ctx)
        if self.existing and not (path.is_dir() and holds_lake(path)):
            self.fail(f"{text!r} holds no lake (no table has been written there); give the folder a stream or "
                      "backfill wrote", param, ctx)
        return text


def announce_new_lake(lake: str) -> None:
    """stream and backfill create the lake they are given: say so when the folder holds none (a typo'd
    --lake would otherwise start a second lake silently)."""
    path = Path(lake.removeprefix("file://"))
    if "://" not in lake.replace("file://", "") and not (path.is_dir() and holds_lake(path)):
        click.echo(f"no lake at {lake}: creating a new one", err=True)


def require_lake(lake: str) -> None:
    """A lake with no table is an error, not an empty answer: for an object store (a local folder is
    checked by LakeLocation(existing=True) while parsing) and for commands where it depends on
    another option (`alerts` without --follow)."""
    from finpulse.pipeline.lake.storage import is_remote
    from finpulse.pipeline.lake.tables import exists
    from finpulse.schemas.errors import UsageError

    try:
        found = exists(lake) if is_remote(lake) else holds_lake(Path(lake.removeprefix("file://")))
    except Exception as exc:  # noqa: BLE001 - the object store's own reason (credentials, endpoint), in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--lake {lake!r}: cannot open it ({reason}); check the URL, its endpoint_override and "
                         "the credentials") from None
    if not found:
        raise UsageError(f"--lake {lake!r} holds no lake (no table has been written there); give the folder or "
                         "URL a stream or backfill wrote")


_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?")


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        return bool(_HOST.fullmatch(text))


class Host(_Example):
    """A host name or IP address to bind or reach."""

    name = "host"
    example = "127.0.0.1"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not _is_host(str(value)):
            self.fail(f"{value!r} is not a host name or IP address", param, ctx)
        return value


class HostPorts(_Example):
    """host:port, or several comma-separated (`many`: a Kafka bootstrap list); `schemes`: an optional
    scheme:// before it (a Dask scheduler's tcp://host:port)."""

    name = "host:port"

    def __init__(self, many: bool = False, schemes: Sequence[str] = ()) -> None:
        self.many, self.schemes = many, tuple(schemes)
        self.example = ("localhost:9092,localhost:9093" if many
                        else f"{schemes[0]}://localhost:8786" if schemes else "localhost:8097")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        items = str(value).split(",") if self.many else [str(value)]
        for item in items:
            scheme, sep, rest = item.strip().partition("://")
            if sep and scheme not in self.schemes:
                self.fail(f"{value!r}: {scheme!r} is not one of {', '.join(self.schemes) or 'no scheme'}", param, ctx)
            host, sep, port = (rest if sep else item.strip()).rpartition(":")
            if not sep or not _is_host(host) or not port.isdigit() or not 0 < int(port) < 65536:
                self.fail(f"{value!r}: {item!r} is not host:port" if len(items) > 1 else f"{value!r} is not host:port",
                          param, ctx)
        return value


class _Pattern(_Example):
    """A value that must match `pattern` whole; `what` finishes the message ("... is not one ticker")."""

    pattern = ""
    what = ""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not re.fullmatch(self.pattern, str(value)):
            self.fail(f"{value!r} {self.what}", param, ctx)
        return value


class Ticker(_Pattern):
    """One ticker symbol (a leading $ allowed): letters, digits, '.' and '-'."""

    name = "ticker"
    example = "AAPL"
    pattern = r"\$?[A-Za-z0-9][A-Za-z0-9.\-]{0,14}"
    what = "is not one ticker"


class WebUrl(_Example):
    """An http(s) URL (webhooks)."""

    name = "url"
    example = "https://hooks.example.com/finpulse"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        parts = urlsplit(str(value))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(f"{value!r} is not an http:// or https:// URL", param, ctx)
        return value


_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


class Topics(_Example):
    """A Kafka topic name, or several comma-separated (`many`); Kafka's own rules for the characters."""

    name = "topic"

    def __init__(self, many: bool = False) -> None:
        self.many = many
        self.example = "news,social" if many else "news"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        items = str(value).split(",") if self.many else [str(value)]
        bad = [t for t in items if not _TOPIC.fullmatch(t) or t in (".", "..")]
        if bad:
            self.fail(f"{value!r}: {bad[0]!r} is not a Kafka topic name (letters, digits, '.', '_', '-')", param, ctx)
        return value


class Registry(_Example):
    """`--registry`: a shipped profile name or an existing registry JSON file."""

    name = "registry"
    example = "default, accurate or models/registry.json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from finpulse.models.artifacts.registry import SHIPPED

        if value in SHIPPED or Path(str(value)).is_file():
            return value
        self.fail(f"{value!r} is neither a shipped registry ({', '.join(SHIPPED)}) nor a registry file", param, ctx)


class Device(_Pattern):
    """auto | cpu | cuda | cuda:N."""

    name = "device"
    example = "cpu"
    pattern = r"auto|cpu|cuda(:[0-9]+)?"
    what = "is not one of auto, cpu, cuda, cuda:N"


class Glob(_Example):
    """Input files: a glob (comma-separate several) that must match at least one file."""

    name = "glob"
    example = "'archive/*.jsonl'"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import glob

        patterns = [p.strip() for p in str(value).split(",") if p.strip()]
        if "://" in str(value):
            return value  # object-store globs are listed by the job
        empty = [p for p in patterns if not glob.glob(p, recursive=True)] if patterns else [str(value)]
        if empty:
            self.fail(f"{value!r}: no file matches {empty[0]!r}", param, ctx)
        return value


class TaskValue(_Example):
    """`--data FILE` or `--data TASK=FILE` of `finpulse train` (kind "file"), TASK=DIR of an artifact or
    of `finpulse distill label` soft labels ("teacher"), TASK=N ("count"): the task, if named, is a known
    one and the rest is what it must be.
    Returns the text; the command groups values by task (which may depend on its TASK argument)."""

    name = "task value"

    def __init__(self, tasks: Sequence[str], kind: str) -> None:
        self.tasks, self.kind = tuple(tasks), kind
        self.example = {"file": "sentiment=data/train.csv", "teacher": "sentiment=models/default",
                        "count": "ner=3"}[kind]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        task, sep, rest = str(value).partition("=")
        if not sep:
            task, rest = "", str(value)
        if (sep or self.kind == "count") and task not in self.tasks:
            self.fail(f"{value!r}: {task!r} is not a task ({', '.join(t for t in self.tasks if t != 'all')})",
                      param, ctx)
        if self.kind == "count" and not (rest.isdigit() and int(rest) >= 1):
            self.fail(f"{value!r}: {rest!r} is not a whole number >= 1", param, ctx)
        if self.kind == "file" and not Path(rest).is_file():
            self.fail(f"{value!r}: no file {rest!r}", param, ctx)
        teacher_files = ("finpulse_model.json", "manifest.json")
        if self.kind == "teacher" and not any(Path(rest, f).is_file() for f in teacher_files):
            self.fail(f"{value!r}: {rest!r} is neither an artifact folder (finpulse_model.json) nor a folder of "
                      "`finpulse distill label` soft labels (manifest.json)", param, ctx)
        return value


class Parsed(_Example):
    """A value read by a parser of the library (it raises ValueError with the reason): one place to parse."""

    def __init__(self, parse: Callable[[str], Any], name: str, example: str) -> None:
        self.parse, self.name, self.example = parse, name, example

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except (ValueError, TypeError) as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


def lake_option(help: str = "lake directory or object-store URL (s3://bucket/path?endpoint_override=..., gs://...)",
                existing: bool = False) -> Callable[[F], F]:
    """--lake; `existing=True` for the commands that read a lake (a local path with none is an error)."""
    return click.option("--lake", envvar="FINPULSE_LAKE", default=DEFAULT_LAKE, show_default=True, show_envvar=True,
                        type=LakeLocation(existing), help=help)


def registry_option() -> Callable[[F], F]:
    """--profile and --registry: which models a command loads (models/artifacts/registry.py, `chosen_registry`)."""
    from finpulse.models.artifacts.profiles import PROFILE_CHOICES

    def both(fn: F) -> F:
        fn = click.option("--registry", envvar="FINPULSE_REGISTRY", default=None, show_envvar=True, type=Registry(),
                          help="model registry: a JSON file, or a shipped name (default | accurate); wins over "
                               "--profile")(fn)
        return click.option("--profile", envvar="FINPULSE_PROFILE", default=None, show_envvar=True,
                            type=click.Choice(PROFILE_CHOICES),
                            help="fast (MiniLM), accurate (mpnet post and per-company sentiment, several times the "
                                 "compute) or auto: accurate on a GPU, fast on a CPU; default: the settings' "
                                 "models.profile, else auto (models/cards/profiles.md)")(fn)

    return both


def profile_env_option(what: str = "the models this command and the processes it starts load") -> Callable[[F], F]:
    """--profile for commands that start pipelines rather than load models themselves (demo, chaos,
    realtext-eval, bench-stories, bench-precision): it sets FINPULSE_PROFILE, which every model load of
    this process and of the processes it starts reads (models/artifacts/profiles.py, `chosen_registry`)."""
    import os

    from finpulse.models.artifacts.profiles import PROFILE_CHOICES

    def put(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value:
            os.environ["FINPULSE_PROFILE"] = value

    return click.option("--profile", type=click.Choice(PROFILE_CHOICES), default=None, expose_value=False,
                        callback=put, help=f"fast | accurate | auto for {what} (sets FINPULSE_PROFILE; default: "
                                           "FINPULSE_PROFILE, the settings' models.profile, else auto)")


def device_option() -> Callable[[F], F]:
    return click.option("--device", envvar="FINPULSE_DEVICE", default="auto", show_default=True, show_envvar=True,
                        type=Device(),
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
    return click.option("--bootstrap", envvar="FINPULSE_KAFKA_BOOTSTRAP", default=None, show_envvar=True,
                        type=HostPorts(many=True), help=help)


def metrics_options(fn: F) -> F:
    """--metrics-port / --metrics-host, shared by stream, backfill and alerts (see runtime/metrics.py)."""
    fn = click.option("--metrics-host", default=None, type=Host(),
                      help="address for the metrics server (default 127.0.0.1; 0.0.0.0 exposes it)")(fn)
    return click.option("--metrics-port", type=Port(), default=None,
                        help="serve Prometheus /metrics, /healthz and /readyz on this port (off by default)")(fn)


def verbose_option() -> Callable[[F], F]:
    return click.option("-v", "--verbose", is_flag=True, help="log every commit (DEBUG)")


def workers_option() -> Callable[[F], F]:
    return click.option("--workers", type=Int(min=1, example="2"), default=1, show_default=True,
                        help="SDK worker processes on the local runner, each with its own model copy on CPU "
                             "(on CUDA they share one); partitions and files are split between them")


def shared_model_option() -> Callable[[F], F]:
    return click.option("--shared-model/--model-per-process", "shared_model", default=None,
                        help="with --workers N: one model copy served to every worker process (Beam's shared-model "
                             "path; the default on CUDA, one copy in GPU memory) or one copy in each process (the "
                             "default on CPU, each on its own cores)")


def runner_options(fn: F) -> F:
    """--runner local|dask and --dask-address, shared by the bounded jobs (backfill, rescore)."""
    fn = click.option("--dask-address", type=HostPorts(schemes=("tcp", "tls")), default=None,
                      help="with --runner dask: the scheduler, tcp://host:port")(fn)
    return click.option("--runner", "runner", type=click.Choice(["local", "dask"]), default="local",
                        show_default=True,
                        help="local: Beam's in-process runner (--workers N processes); dask: Beam's DaskRunner on "
                             "the Dask cluster at --dask-address (docs/DEPLOY.md)")(fn)


def check_runner(runner: str, dask_address: str | None, workers: int) -> None:
    """The --runner / --dask-address / --workers combinations that make sense, or a usage error saying why."""
    if (runner == "dask") != bool(dask_address):
        raise click.UsageError("--runner dask needs --dask-address tcp://host:port of the Dask scheduler, and "
                               "--dask-address is only for --runner dask")
    if runner == "dask" and workers > 1:
        raise click.UsageError("--workers is for the local runner; on Dask the cluster's workers run the chunks")


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


def parse_time(value: str | datetime | None, option: str = "--since") -> datetime | None:
    """An ISO-8601 time from a flag (naive means UTC), or a usage error that shows the expected form
    (options typed IsoTime() arrive parsed)."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time (e.g. 2026-11-02T09:00:00Z)", param_hint=option) from None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts
