"""`finpulse stream`: Kafka -> parse -> enrich -> lake, on FnApiRunner unless told otherwise."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
import uuid
from typing import TYPE_CHECKING

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from finpulse.models.artifacts.preflight import check_models
from finpulse.pipeline.enrich.handler import FinpulseModelHandler
from finpulse.pipeline.jobs.transforms import enrich_and_write
from finpulse.pipeline.lake.commit import Lake
from finpulse.pipeline.lake.faults import require_writable
from finpulse.pipeline.lake.maintenance import BackgroundOptimizer
from finpulse.pipeline.lake.storage import is_remote
from finpulse.pipeline.messages import PartitionDesc
from finpulse.pipeline.runtime import metrics
from finpulse.pipeline.runtime.beam_patches import bound_fn_api_runner_metrics
from finpulse.pipeline.runtime.settings import StreamSettings, load_settings
from finpulse.pipeline.sources.kafka import OFFSET_MASK, ReadKafkaPartitions, halt_reason
from finpulse.pipeline.sources.kafka_xlang import ReadKafkaXlang, XlangConfig, expansion_service
from finpulse.pipeline.sources.membership import GroupMembership
from finpulse.schemas.errors import EX_TEMPFAIL, BrokerUnavailable, PartitionsChanged, UsageError

if TYPE_CHECKING:
    from apache_beam.runners.runner import PipelineRunner
    from kafka import KafkaConsumer

log = logging.getLogger(__name__)


def discover_partitions(client_config: dict, topics: list[str], timeout: float = 60.0) -> list[PartitionDesc]:
    """Wait (with a clear log line) until the broker answers and every topic exists."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    while True:
        try:
            consumer = KafkaConsumer(**client_config, request_timeout_ms=10000)
            try:
                found = {t: consumer.partitions_for_topic(t) for t in topics}
            finally:
                consumer.close()
            missing = [t for t, parts in found.items() if not parts]
            if not missing:
                return [PartitionDesc(t, p) for t in topics for p in sorted(found[t])]
            problem = f"topic(s) {', '.join(missing)} not found; create them or fix --topics"
        except KafkaError as exc:
            problem = f"no broker reachable ({type(exc).__name__})"
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"finpulse stream: {problem} at {client_config['bootstrap_servers']} (gave up after {timeout:.0f}s)")
        log.warning("waiting for Kafka at %s: %s", client_config["bootstrap_servers"], problem)
        time.sleep(2)


class GroupOffsetCommitter:
    """Mirrors the lake's progress into Kafka group offsets, so standard lag tools work.

    Best effort and after the lake commit: the lake, not Kafka, is the source of truth.
    """

    def __init__(self, client_config: dict, group: str) -> None:
        self._config = client_config
        self._group = group
        self._consumer: KafkaConsumer | None = None  # made on first use

    def __call__(self, source: str, end: int) -> None:
        from kafka import KafkaConsumer, TopicPartition
        from kafka.structs import OffsetAndMetadata

        if not source.startswith("kafka."):
            return
        topic, _, partition = source[len("kafka."):].rpartition(".")
        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(**self._config, group_id=self._group, enable_auto_commit=False)
            offset = end & OFFSET_MASK  # strip the log epoch (see kafka_source)
            self._consumer.commit_async({TopicPartition(topic, int(partition)): OffsetAndMetadata(offset, "", -1)})
        except Exception as exc:  # noqa: BLE001 - monitoring only; never fail the pipeline for it
            log.warning("could not mirror offset %s=%d to group %s: %s", source, end, self._group, exc)

    def __getstate__(self):
        return {"_config": self._config, "_group": self._group, "_consumer": None}


REMOTE_WORKERS = {"DataflowRunner"}  # runners whose workers never share the launcher's disk


def pipeline_options(beam_args: list[str] | None,
                     lake: str | None = None) -> tuple[PipelineOptions, PipelineRunner | None]:
    """Beam options passed through untouched; FnApiRunner in-process unless --runner is given.

    The local runner honours --direct_num_workers/--direct_running_mode (multi_processing: one
    fresh SDK worker process per worker; see runner.py for the fix that makes that work with
    our splittable DoFns). A runner whose workers run on other machines cannot write a
    local lake, so that mistake fails here rather than on the workers.
    """
    args = list(beam_args or [])
    options = PipelineOptions(args)
    runner = options.view_as(StandardOptions).runner
    if runner:
        name = runner if isinstance(runner, str) else type(runner).__name__
        if lake is not None and not is_remote(lake) and name.split(".")[-1] in REMOTE_WORKERS:
            raise UsageError(f"--runner={name}: its workers cannot write the local lake {lake}; "
                             f"use an object-store lake (s3://bucket/path or gs://bucket/path)")
        return options, None
    from finpulse.pipeline.runtime.runner import FinpulseRunner

    bound_fn_api_runner_metrics()  # else every bundle's metrics stay in memory for good (see beam_patches)
    return options, FinpulseRunner()


def run_stream(settings: StreamSettings, beam_args: list[str] | None = None, source: str = "sdf",
               xlang: XlangConfig | None = None) -> None:
    """Kafka -> lake until stopped. `source`: "sdf" (Python splittable DoFn, default) or "xlang" (Java KafkaIO)."""
    registry = check_models(settings.registry)  # fail before consuming anything
    options, runner = pipeline_options(beam_args, settings.lake)
    if source == "xlang":
        expansion_service(xlang or XlangConfig())  # fail before taking the lock
    if not is_remote(settings.lake):
        require_writable(settings.lake)  # a read-only or full lake stops us before anything is consumed
    lake = Lake(settings.lake)
    # One stream per lake, unless it shares the topics with its group: then Kafka's coordinator
    # splits the partitions and the lake's fencing keeps each one to its owner (lake/commit.py).
    writer_lock = None if settings.join_group else lake.lock("stream")  # held until this process exits
    optimizer = BackgroundOptimizer(settings.lake, settings.optimize_every).start()  # never blocks commits
    client = settings.kafka.client_config(reader=True)
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port, metrics.Readiness(settings.lake, client, settings.stalled_after),
                      settings.metrics_host)
    partitions = discover_partitions(client, settings.topics)
    member, assignment = None, None
    if settings.join_group:
        assignment = os.path.join(tempfile.mkdtemp(prefix="finpulse-group-"), "assignment.json")
        member = GroupMembership(client, settings.group, settings.topics, settings.lake, assignment).start()
    log.info("streaming %d partitions of %s into %s (model %s)", len(partitions), ",".join(settings.topics),
             settings.lake, registry.model_version)
    handler = FinpulseModelHandler(settings.registry, dataclasses.replace(load_settings().inference, device=resolve_device(settings.device),
                                                          precision=settings.precision),
                                   settings.batch_size, large_model=settings.shared_model)
    with beam.Pipeline(runner=runner, options=options) as p:
        if source == "xlang":
            messages = p | "ReadKafkaXlang" >> ReadKafkaXlang(client, settings.topics, settings.group, xlang or XlangConfig())
        else:
            reader = ReadKafkaPartitions(client, settings.lake, uuid.uuid4().hex, settings.poll_records,
                                         settings.max_message_bytes, settings.max_records, settings.idle_exit,
                                         settings.bundle_records, settings.bundle_seconds, len(partitions),
                                         settings.bundle_initial, settings.flush_seconds, settings.flush_rows,
                                         settings.catchup_records, settings.catchup_seconds, assignment)
            messages = p | "Partitions" >> beam.Create(partitions) | "ReadKafka" >> beam.ParDo(reader)
        # a group member mirrors its partitions' offsets itself (a non-member's commits are refused)
        enrich_and_write(messages, settings.lake, handler, settings.max_message_bytes,
                         on_commit=None if member else GroupOffsetCommitter(client, settings.group),
                         story_scope="kafka", assignment=assignment)
    if member is not None:
        member.close()
        shutil.rmtree(os.path.dirname(member.path), ignore_errors=True)
    optimizer.close()
    if writer_lock is not None:
        writer_lock.close()
    if halt_reason():  # partitions were added: stopped cleanly, a restart reads them (see TopicWatch)
        raise PartitionsChanged(f"partitions were added to {', '.join(settings.topics)}: stopped cleanly; "
                                f"restart finpulse stream to read them (exit {EX_TEMPFAIL})")


def resolve_device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
