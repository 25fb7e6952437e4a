"""Optional cross-language source: Beam's Java KafkaIO (`ReadFromKafka`) instead of the Python SDF.

For runners that have Java (Dataflow Runner v2, Flink with the Java SDK harness), KafkaIO brings
Java's consumer throughput and the runner's own offset checkpointing. It needs Beam's Java
*expansion service* at pipeline construction time, which is a jar from Maven Central
(`beam-sdks-java-io-expansion-service-<version>.jar`): either a running service
(`--expansion-service host:port`) or a local jar (`--expansion-jar PATH`, started with `java`).
We never let Beam download the jar on its own: offline it would hang and then fail obscurely.

Exactly-once with this source: KafkaIO starts from the group's committed offsets
(`commit_offset_in_finalize`), not from the lake's progress, so a restart may replay records the
lake already holds; `Lake.commit` drops rows below each partition's committed position, so replays
add nothing. Positions are plain offsets (epoch 0): the SDF source's log-reset epochs are not
available here, so do not switch a lake whose partitions went through a log reset to this source.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam

from finpulse.pipeline.lake.commit import source_key
from finpulse.pipeline.messages import Coordinates, RawMessage
from finpulse.schemas.errors import ExpansionServiceError

SOURCES = ("sdf", "xlang")
HOW_TO = ("The cross-language Kafka source (--source xlang) needs Beam's Java expansion service. Either start it "
          "(`java -jar beam-sdks-java-io-expansion-service-{v}.jar 8097`, jar from Maven Central) and pass "
          "--expansion-service localhost:8097, or pass --expansion-jar PATH/TO/that.jar with Java on PATH. "
          "The default --source sdf needs neither.")


@dataclass(frozen=True)
class XlangConfig:
    expansion_service: str | None = None  # host:port of a running expansion service
    expansion_jar: str | None = None  # a local expansion-service jar, started with `java -jar`


def expansion_service(cfg: XlangConfig):
    """The expansion service to use, or ExpansionServiceError saying what to do (checked before building anything)."""
    from apache_beam.transforms.external import JavaJarExpansionService
    from apache_beam.version import __version__

    how = HOW_TO.format(v=__version__)
    if cfg.expansion_service:
        host, _, port = cfg.expansion_service.rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=5):
                pass
        except (OSError, ValueError) as exc:
            raise ExpansionServiceError(f"finpulse stream: no expansion service at {cfg.expansion_service} ({exc}). {how}") from None
        return cfg.expansion_service
    if cfg.expansion_jar:
        if not Path(cfg.expansion_jar).is_file():
            raise ExpansionServiceError(f"finpulse stream: expansion jar {cfg.expansion_jar} not found. {how}")
        if shutil.which("java") is None:
            raise ExpansionServiceError(f"finpulse stream: `java` is not on PATH. {how}")
        return JavaJarExpansionService(cfg.expansion_jar)
    raise ExpansionServiceError(f"finpulse stream: no expansion service given. {how}")


def consumer_config(client_config: dict, group: str) -> dict[str, str]:
    """kafka-python settings -> Java consumer properties (strings only, as KafkaIO wants them)."""
    java = {
        "bootstrap.servers": ",".join(client_config["bootstrap_servers"]),
        "security.protocol": client_config.get("security_protocol", "PLAINTEXT"),
        "group.id": group,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": "false",  # a reader never creates a topic (see KafkaSettings.client_config)
    }
    if client_config.get("sasl_mechanism"):
        java["sasl.mechanism"] = client_config["sasl_mechanism"]
        if client_config.get("sasl_plain_username"):
            user = client_config["sasl_plain_username"].replace('"', '\\"')
            password = str(client_config.get("sasl_plain_password", "")).replace('"', '\\"')
            java["sasl.jaas.config"] = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                                        f'username="{user}" password="{password}";')
    if client_config.get("ssl_cafile"):
        java["ssl.truststore.type"] = "PEM"
        java["ssl.truststore.location"] = client_config["ssl_cafile"]
    return java


def to_raw_message(row) -> RawMessage:
    """KafkaIO's metadata row -> the same RawMessage the SDF source emits (position = offset, epoch 0)."""
    coords = Coordinates(topic=row.topic, partition=row.partition, offset=row.offset, timestamp_ms=row.timestamp)
    return RawMessage(coords, row.msg_value, source_key(row.topic, row.partition), row.offset)


class ReadKafkaXlang(beam.PTransform):
    """PBegin -> RawMessages through Java KafkaIO."""

    def __init__(self, client_config: dict, topics: list[str], group: str, cfg: XlangConfig) -> None:
        super().__init__()
        self._client, self._topics, self._group, self._cfg = client_config, topics, group, cfg

    def expand(self, pbegin):
        from apache_beam.io.kafka import ReadFromKafka

        return (
            pbegin
            | "KafkaIO" >> ReadFromKafka(consumer_config=consumer_config(self._client, self._group), topics=self._topics,
                                         with_metadata=True, commit_offset_in_finalize=True,
                                         expansion_service=expansion_service(self._cfg))
            | "ToRawMessage" >> beam.Map(to_raw_message)
        )
