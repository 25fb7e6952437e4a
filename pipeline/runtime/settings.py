"""One typed settings object: defaults < environment (FINPULSE_*) < CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """Connection settings passed straight through to kafka-python (SASL/SSL included)."""

    model_config = SettingsConfigDict(env_prefix="FINPULSE_KAFKA_", extra="ignore")

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


class StreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FINPULSE_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: list[str] = ["news", "social"]
    lake: str = "lake"
    group: str = "finpulse"  # Kafka group whose offsets mirror the lake's progress (for lag monitoring)
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
