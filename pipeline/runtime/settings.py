"""The one settings model: every knob of finpulse, with defaults < config file < environment < flags.

`Settings` has a section per concern (stream, alerts with the detector, stories, inference, models,
linking, dashboard). The sections the pure code takes as arguments (`DetectorConfig`, `StoryConfig`,
`InferenceSettings`, `AlertSettings`) are plain frozen dataclasses defined here, so the detector, the
story index and the engine stay testable without any environment, and a caller passes exactly the
section it means. Nothing else in finpulse reads `os.environ` for its own settings: it asks
`load_settings()` (or is handed a section). `finpulse config show` prints the effective values and
where each came from.

Environment names: `FINPULSE_<FIELD>` for the stream's fields (`FINPULSE_LAKE`, `FINPULSE_PRECISION`),
`FINPULSE_KAFKA_<FIELD>` for the broker connection, and `FINPULSE_<SECTION>__<FIELD>` for the other
sections (`FINPULSE_DETECTOR__ALPHA=1e-4`, `FINPULSE_MODELS__REGISTRY=accurate`); a whole section may be
given as JSON (`FINPULSE_DETECTOR='{"windows": [1, 3]}'`). The config file is TOML (`--config F` or
`FINPULSE_CONFIG`), one table per section.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import tomllib
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from finpulse.schemas.errors import ConfigError


def _config_path() -> str | None:
    return os.environ.get("FINPULSE_CONFIG")


class _FileSection(PydanticBaseSettingsSource):
    """The section's table of the TOML file named by FINPULSE_CONFIG (below the environment and flags)."""

    def __init__(self, settings_cls: type[BaseSettings], table: tuple[str, ...]) -> None:
        super().__init__(settings_cls)
        self.table = table

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        node: Any = read_config_file(_config_path())
        for part in self.table:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return dict(node) if isinstance(node, dict) else {}


class _Section(BaseSettings):
    """A section read from flags, then the environment, then the config file's `[table]`, then defaults."""

    file_table: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,  # type: ignore[override]
                                   file_secret_settings):
        return init_settings, env_settings, file_secret_settings, _FileSection(settings_cls, cls.file_table)


class KafkaSettings(_Section):
    """Connection settings passed straight through to kafka-python (SASL/SSL included)."""

    model_config = SettingsConfigDict(env_prefix="FINPULSE_KAFKA_", extra="ignore")
    file_table: ClassVar[tuple[str, ...]] = ("stream", "kafka")

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None  # from env or a secrets file, never logged
    # Docker/Kubernetes secrets convention: FINPULSE_KAFKA_SASL_PLAIN_PASSWORD_FILE=/run/secrets/kafka
    sasl_plain_password_file: Path | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @model_validator(mode="after")
    def _password_from_file(self) -> KafkaSettings:
        """Read the password from its file, so it never has to sit in the environment or a flag."""
        if self.sasl_plain_password_file is None:
            return self
        if self.sasl_plain_password is not None:
            raise ValueError("set the Kafka password either directly or as a file (..._PASSWORD_FILE), not both")
        try:
            secret = self.sasl_plain_password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read the Kafka password file {self.sasl_plain_password_file}: {exc.strerror}") from None
        self.sasl_plain_password = SecretStr(secret)
        return self

    def client_config(self, *, reader: bool = False) -> dict[str, Any]:
        """kafka-python client settings; `reader=True` for clients that only read and watch topics.

        A reader must never create the topic it asks about: a metadata request for a missing topic
        creates it, with the broker's default partition count, on brokers that allow auto-creation
        (Kafka's default, and Tansu's). Seen: after an in-memory broker restarted empty, the
        stream's own partition watch re-created "news" with 4 partitions before the producer could
        create it with 3, and the run stopped as if partitions had been added.
        """
        cfg: dict[str, Any] = {"bootstrap_servers": self.bootstrap.split(","), "security_protocol": self.security_protocol}
        if reader:
            cfg["allow_auto_create_topics"] = False
        for key in ("sasl_mechanism", "sasl_plain_username", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key):
                cfg[key] = getattr(self, key)
        if self.sasl_plain_password is not None:
            cfg["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        return cfg


class StreamSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="FINPULSE_", extra="ignore")
    file_table: ClassVar[tuple[str, ...]] = ("stream",)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: list[str] = ["news", "social"]
    lake: str = "lake"
    group: str = "finpulse"  # Kafka group whose offsets mirror the lake's progress (for lag monitoring)
    join_group: bool = False  # share the topics with the group's other processes (sources/membership.py)
    registry: str | None = None  # model registry JSON or shipped name "default" / "accurate" (default: models/registry.json)
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | int8 (see models/engine/inference.py, pick_precision)
    max_message_bytes: int = 1024 * 1024
    poll_records: int = 500  # most records one partition reads in one bundle
    # A bundle reads at most this many records over all partitions, then commits: the bound on
    # the first commit's delay on a backlog and on the latency at steady load (README, Latency).
    bundle_records: int = Field(default=256, ge=1)
    # The time a bundle aims for: its record limit follows the measured pace (sources/kafka.py,
    # BundleBudget), and after this a bundle stops waiting on empty partitions.
    bundle_seconds: float = Field(default=1.0, gt=0)
    bundle_initial: int = Field(default=32, ge=1)  # records of the first bundle, before the pace is known
    # While the stream is behind (more records waiting after a bundle than it read), bundles pace
    # themselves to catchup_seconds under this cap instead: fewer, fuller commits and model batches
    # drain a backlog faster (BundleBudget). Set it to bundle_records to keep bundles small always.
    catchup_records: int = Field(default=2048, ge=1)
    catchup_seconds: float = Field(default=5.0, gt=0)
    metrics_port: int | None = None  # Prometheus /metrics, /healthz, /readyz (off unless set; 0 = any free port)
    metrics_host: str = "127.0.0.1"
    stalled_after: float = 120.0  # /readyz fails when the last commit is older than this while there is lag
    # ... and at least flush_seconds of data per partition or flush_rows rows, whichever first (within
    # that bound): a trickle then makes one commit (one small file per table) a second, not one a poll
    flush_seconds: float = Field(default=1.0, ge=0)
    flush_rows: int = Field(default=5000, ge=1)
    optimize_every: float = 600.0  # background compaction + vacuum of the lake, seconds (0: off)
    batch_size: int = 512  # texts handed to the model handler at once
    # one model copy for all worker processes of the machine (True) or one in each (False);
    # None: shared on CUDA only (FinpulseModelHandler.share_model_across_processes)
    shared_model: bool | None = None
    max_records: int | None = None
    idle_exit: float | None = None
    metadata_check_s: float = 30.0  # how often the Kafka source looks for new partitions


# -- sections the pure code takes as arguments ------------------------------------------------------


@dataclass(frozen=True)
class InferenceSettings:
    """The engine (models/engine/inference.py): device, windows, batch sizes, precision, the target pass."""

    device: str = "cpu"
    stride: int = 32
    max_chars: int = 20_000
    token_budget: int = 8192  # padded tokens per forward pass
    max_batch: int = 256  # texts per pass (on an H100 larger batches measured no faster: the host side binds)
    threads: int | None = None  # torch intra-op threads on CPU (None: torch default)
    chunk_texts: int = 2048  # texts tokenised and held at once: memory stays flat however many are passed
    precision: str = "auto"  # auto | fp32 | bf16 | int8: see pick_precision
    # which texts' mentions the entity_target model re-reads: multi, all or off (None: the registry's
    # choice, models/artifacts/registry.py, else multi)
    target_pass: str | None = None


@dataclass(frozen=True)
class StoryConfig:
    """Tuned on copies made from real headlines (docs/ALERTS.md, "Real text")."""

    window: timedelta = timedelta(days=3)  # a copy must be published within this of a post it matches
    threshold: float = 0.6  # estimated Jaccard of the 5-gram shingle sets
    num_perm: int = 64  # MinHash permutations: 64 keeps hashing cheap; the estimate's sd is <= 0.0625
    bands: int = (
        16  # LSH bands of num_perm / bands rows: a pair at Jaccard 0.6 is a candidate with p 0.9, at 0.3 with p 0.12
    )
    shingle: int = 5  # characters per shingle: robust to single-word edits in short posts
    seed: int = 1


@dataclass(frozen=True)
class DetectorConfig:
    """The negative-spike rule (pipeline/alerts/detector.py); docs/ALERTS.md says how each default was chosen."""

    baseline_buckets: int = 72  # 3 days of hours: a steadier share than 1 day, still tracks drift
    guard_buckets: int = 1  # buckets between baseline and test, so an event's onset is not its own baseline
    min_history_posts: int = 30  # below this much baseline volume, no alert (cold start)
    min_volume: int = 20  # posts in the tested window
    min_ratio: float = 1.5
    min_delta: float = 0.10
    alpha: float = 1e-3  # on the Bonferroni-adjusted p-value; docs/ALERTS.md has the recall / false-alarm trade-off
    windows: tuple[int, ...] = (1, 2)  # share test over the last 1 and the last 2 buckets
    count_channel: bool = True
    # buckets per seasonal period: a day of hours (alerts.seasonal sets it from the bucket width)
    season_buckets: int = 24
    season_periods: int = 7  # same-phase buckets in the count channel's history
    min_count_ratio: float = 2.0  # count channel: negatives >= this x the seasonal expectation
    support_alpha: float = 0.05  # count channel: the share test must reach at least this
    cooldown_buckets: int = 6
    prior_posts: float = 20.0

    @property
    def tests(self) -> int:
        """Hypotheses tested per bucket (the Bonferroni factor)."""
        return len(self.windows) + (1 if self.count_channel else 0)

    @property
    def history_buckets(self) -> int:
        """How far back a bucket's evidence reaches (what a backtest must load before its start)."""
        seasonal = self.season_buckets * self.season_periods if self.count_channel else 0
        return max(self.baseline_buckets + self.guard_buckets + max(self.windows) - 1, seasonal)


@dataclass
class AlertSettings:
    """Which series the alert rule runs over (pipeline/alerts/evaluate.py), and the rule itself."""

    bucket: str = "1 hour"
    key_kinds: tuple[str, ...] = ("company",)
    unit: str = "story"  # count distinct stories (default) or every post ("post")
    # With unit "story" the volume floor counts distinct stories: 12 found every labelled event of the
    # real-text evaluation with no alert on copies (20, the posts floor, missed half the diluted ones;
    # docs/ALERTS.md, "Real text"). None keeps the detector's min_volume.
    min_stories: int | None = 12
    since: datetime | None = None
    until: datetime | None = None
    detector: DetectorConfig = field(default_factory=DetectorConfig)


# -- sections read from the environment by their own names ---------------------------------------------


class ModelSettings(_Section):
    """Which models serve, and where built engines are cached (FINPULSE_REGISTRY, FINPULSE_CACHE)."""

    model_config = SettingsConfigDict(env_prefix="FINPULSE_", extra="ignore")
    file_table: ClassVar[tuple[str, ...]] = ("models",)

    registry: str | None = None  # registry JSON, or a shipped name: "default" / "accurate" (None: the profile's)
    profile: Literal["fast", "accurate", "auto"] = "auto"  # without a registry: auto = accurate on a GPU, else fast
    cache: Path | None = None  # int8 engines and unpacked bases (None: ~/.cache/finpulse)

    def cache_dir(self) -> Path:
        return self.cache or Path.home() / ".cache" / "finpulse"


class LinkingSettings(_Section):
    """Company linking: the gazetteer file (FINPULSE_COMPANIES; None: the shipped S&P 500 + SEC list)."""

    model_config = SettingsConfigDict(env_prefix="FINPULSE_", extra="ignore")
    file_table: ClassVar[tuple[str, ...]] = ("linking",)

    companies: str | None = None


class DashboardSettings(_Section):
    """The dashboard: which lake it reads (FINPULSE_LAKE, the same variable the stream reads)."""

    model_config = SettingsConfigDict(env_prefix="FINPULSE_", extra="ignore")
    file_table: ClassVar[tuple[str, ...]] = ("dashboard",)

    lake: str = "lake"
    port: int = Field(default=8501, ge=1, le=65535)


# -- the one settings object ----------------------------------------------------------------------------

NESTED_SECTIONS = ("alerts", "stories", "inference")  # dataclasses: read FINPULSE_<SECTION>__<FIELD> and [section]


class Settings(BaseModel):
    """Every section of finpulse's configuration in one object; build it with `load_settings()`."""

    stream: StreamSettings = Field(default_factory=StreamSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    stories: StoryConfig = Field(default_factory=StoryConfig)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    linking: LinkingSettings = Field(default_factory=LinkingSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)


def _section_type(section: str) -> type:
    cls = Settings.model_fields[section].annotation
    assert isinstance(cls, type)
    return cls


def _env_name(cls: type[BaseSettings], name: str) -> str:
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def _leaves(obj: Any, path: str = "") -> dict[str, Any]:
    """Every leaf value of a settings object, keyed by its dotted path (`stream.kafka.bootstrap`)."""
    if isinstance(obj, BaseModel):
        items = {k: getattr(obj, k) for k in type(obj).model_fields}
    elif is_dataclass(obj) and not isinstance(obj, type):
        items = {f.name: getattr(obj, f.name) for f in fields(obj)}
    else:
        return {path: obj}
    out: dict[str, Any] = {}
    for k, v in items.items():
        out |= _leaves(v, f"{path}.{k}" if path else k)
    return out


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """The TOML config file as a dict of sections (`[stream]`, `[alerts.detector]`...); {} without one."""
    if path is None:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; give an existing TOML file or drop --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"config file {path}: unknown section(s) {unknown}; "
                          f"sections are {sorted(Settings.model_fields)}")
    return data


def _deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for k, v in high.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _section_env(section: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """A dataclass section's values from FINPULSE_<SECTION> (JSON) and FINPULSE_<SECTION>__<FIELD>[__<SUB>]."""
    out: dict[str, Any] = {}
    whole = environ.get(f"FINPULSE_{section}".upper())
    if whole:
        try:
            out = json.loads(whole)
        except ValueError:
            example = '{"alpha": 0.001}'
            raise ConfigError(f"FINPULSE_{section.upper()} must be a JSON object, e.g. '{example}'") from None
    prefix = f"FINPULSE_{section}__".upper()
    for key, value in environ.items():
        if key.startswith(prefix):
            parts = key[len(prefix):].lower().split("__")
            node = out
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            try:
                node[parts[-1]] = json.loads(value)
            except ValueError:
                node[parts[-1]] = value
    return out


def load_settings(flags: Mapping[str, Mapping[str, Any]] | None = None,
                  config_file: str | Path | None = None) -> Settings:
    """The effective settings: defaults < config file < environment < flags (None values in flags are unset).

    `flags` is keyed by section (`{"stream": {"lake": "L"}}`); the config file is `config_file`, else
    $FINPULSE_CONFIG, else none.
    """
    return _build(flags, config_file)[0]


def _build(flags: Mapping[str, Mapping[str, Any]] | None,
           config_file: str | Path | None) -> tuple[Settings, dict[str, str]]:
    from pydantic import TypeAdapter, ValidationError

    env = dict(os.environ)
    if config_file is not None and env.get("FINPULSE_CONFIG") != str(config_file):
        # the sections read the file FINPULSE_CONFIG names: name this one there while they are built
        os.environ["FINPULSE_CONFIG"] = str(config_file)
        try:
            return _build(flags, config_file)
        finally:
            if "FINPULSE_CONFIG" in env:
                os.environ["FINPULSE_CONFIG"] = env["FINPULSE_CONFIG"]
            else:
                del os.environ["FINPULSE_CONFIG"]
    config_file = env.get("FINPULSE_CONFIG") if config_file is None else config_file
    file = read_config_file(config_file)
    given = {s: {k: v for k, v in (flags or {}).get(s, {}).items() if v is not None} for s in Settings.model_fields}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for section in Settings.model_fields:
        cls = _section_type(section)
        file_part = file.get(section, {})
        if section in NESTED_SECTIONS:
            merged = _deep_merge(_deep_merge(file_part, _section_env(section, env)), given[section])
            try:
                values[section] = TypeAdapter(cls).validate_python(merged)
            except ValidationError as exc:
                raise ConfigError(f"settings [{section}]: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
        else:  # a BaseSettings section: flags, then its environment, then the file's table (_FileSection)
            try:
                values[section] = cls(**given[section])
            except ValidationError as exc:
                raise ConfigError(f"settings [{section}]: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    settings = Settings.model_construct(**values)
    for path in _leaves(settings):
        section, _, rest = path.partition(".")
        top = rest.split(".")[0]
        cls = _section_type(section)
        nested_env = section in NESTED_SECTIONS and (f"FINPULSE_{section}".upper() in env or any(
            k.startswith(f"FINPULSE_{section}__{rest.replace('.', '__')}".upper()) for k in env))
        if _lookup(given.get(section, {}), rest) is not _MISSING:
            sources[path] = "flag"
        elif nested_env or (section not in NESTED_SECTIONS and _env_name(cls, top) in env) or (
                section == "stream" and top == "kafka" and f"FINPULSE_KAFKA_{rest.split('.')[-1]}".upper() in env):
            sources[path] = "environment"
        elif _lookup(file.get(section, {}), rest) is not _MISSING:
            sources[path] = f"file {config_file}"
        else:
            sources[path] = "default"
    return settings, sources


_MISSING = object()


def _lookup(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def settings_with_sources(flags: Mapping[str, Mapping[str, Any]] | None = None,
                          config_file: str | Path | None = None) -> list[tuple[str, Any, str]]:
    """(dotted name, value, where it came from) for every setting: what `finpulse config show` prints."""
    settings, sources = _build(flags, config_file)
    secret = ("password",)
    return [(path, "***" if any(s in path for s in secret) and value is not None else value, sources[path])
            for path, value in _leaves(settings).items()]
