"""Unbounded Kafka source as a splittable DoFn: one restriction per topic-partition.

The restriction is an offset range [lake position, inf). Each call polls a batch from a cached
consumer (one per partition per worker, never reopened per poll), claims and emits the records,
then defers the remainder: on FnApiRunner that ends the bundle, so downstream writes and commits
every poll. Restrictions are never split except for that checkpoint, which keeps each partition's
commits in order. `--max-records` / `--idle-exit` finish restrictions by claiming their end.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration

from finpulse.pipeline.lake import Lake, source_key
from finpulse.pipeline.parse import Coordinates

log = logging.getLogger(__name__)
END = sys.maxsize


@dataclass(frozen=True)
class PartitionDesc:
    topic: str
    partition: int


@dataclass(frozen=True)
class RawMessage:
    coords: Coordinates
    value: bytes | None


@dataclass
class StopControl:
    """Bounded-run switches shared by all partitions of one run in one process."""

    max_records: int | None = None
    idle_exit: float | None = None
    emitted: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, n: int) -> int:
        """How many of n more records may still be emitted."""
        with self.lock:
            allowed = n if self.max_records is None else max(0, min(n, self.max_records - self.emitted))
            self.emitted += allowed
            if allowed:
                self.last_activity = time.monotonic()
            return allowed

    def should_stop(self) -> bool:
        if self.max_records is not None and self.emitted >= self.max_records:
            return True
        return self.idle_exit is not None and time.monotonic() - self.last_activity > self.idle_exit


_STOPS: dict[str, StopControl] = {}
_CONSUMERS: dict[tuple[str, str, int], Any] = {}
_CONSUMER_LOCK = threading.Lock()


def stop_control(run_id: str, max_records: int | None = None, idle_exit: float | None = None) -> StopControl:
    with _CONSUMER_LOCK:
        return _STOPS.setdefault(run_id, StopControl(max_records, idle_exit))


class _CheckpointOnlyTracker(OffsetRestrictionTracker):
    """Allows the runner's checkpoint (fraction 0) but no parallel split of one partition."""

    def try_split(self, fraction_of_remainder):  # type: ignore[override]
        if fraction_of_remainder != 0:
            return None
        return super().try_split(0)


class ReadKafkaPartitions(beam.DoFn, RestrictionProvider):
    """Emits RawMessages from each PartitionDesc; also its own restriction provider (needs the lake)."""

    def initial_restriction(self, element: PartitionDesc) -> OffsetRange:
        start = Lake(self._lake).committed(source_key(element.topic, element.partition))
        return OffsetRange(start, END)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return _CheckpointOnlyTracker(restriction)

    def restriction_size(self, element: PartitionDesc, restriction: OffsetRange) -> int:
        return 1  # unbounded: size is meaningless, keep splitting heuristics away

    def split(self, element, restriction):
        yield restriction

    def __init__(self, client_config: dict[str, Any], lake: str, run_id: str, poll_records: int, max_message_bytes: int,
                 max_records: int | None, idle_exit: float | None) -> None:
        self._config = client_config
        self._lake = lake
        self._run_id = run_id
        self._poll_records = poll_records
        self._fetch_bytes = max(max_message_bytes * 4, 8 * 1024 * 1024)
        self._max_records = max_records
        self._idle_exit = idle_exit
        self._last_wait_log = 0.0

    def setup(self) -> None:
        self._stop = stop_control(self._run_id, self._max_records, self._idle_exit)

    def _consumer(self, desc: PartitionDesc):
        from kafka import KafkaConsumer, TopicPartition

        key = (self._run_id, desc.topic, desc.partition)
        with _CONSUMER_LOCK:
            entry = _CONSUMERS.get(key)
            if entry is None:
                consumer = KafkaConsumer(
                    **self._config,
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    max_partition_fetch_bytes=self._fetch_bytes,
                    fetch_max_bytes=self._fetch_bytes * 2,
                    reconnect_backoff_ms=200,
                    reconnect_backoff_max_ms=5000,
                    request_timeout_ms=15000,
                )
                tp = TopicPartition(desc.topic, desc.partition)
                consumer.assign([tp])
                entry = _CONSUMERS[key] = {"consumer": consumer, "tp": tp, "next": None}
            return entry

    def process(
        self,
        element: PartitionDesc,
        tracker=beam.DoFn.RestrictionParam(),
    ):
        restriction = tracker.current_restriction()
        if self._stop.should_stop():
            tracker.try_claim(restriction.stop - 1)  # finish: nothing more from this partition in this run
            return
        entry = self._consumer(element)
        consumer, tp = entry["consumer"], entry["tp"]
        if entry["next"] != restriction.start:
            consumer.seek(tp, restriction.start)
            entry["next"] = restriction.start
        try:
            batch = consumer.poll(timeout_ms=250, max_records=self._poll_records).get(tp, [])
        except Exception as exc:  # noqa: BLE001 - the broker may be away; keep retrying with backoff
            self._log_waiting(element, f"poll failed: {exc}")
            batch = []
        batch = [r for r in batch if r.offset >= restriction.start]
        allowed = self._stop.take(len(batch)) if batch else 0
        for rec in batch[:allowed]:
            if not tracker.try_claim(rec.offset):
                return
            entry["next"] = rec.offset + 1
            coords = Coordinates(topic=rec.topic, partition=rec.partition, offset=rec.offset, timestamp_ms=rec.timestamp)
            yield RawMessage(coords, rec.value)
        if allowed < len(batch):
            entry["next"] = None  # we stopped mid-batch: re-seek if this partition is read again
        if not batch:
            self._log_waiting(element, None if consumer.bootstrap_connected() else "broker not reachable")
        tracker.defer_remainder(Duration.of(0 if batch else 0.2))

    def _log_waiting(self, desc: PartitionDesc, problem: str | None) -> None:
        now = time.monotonic()
        if problem and now - self._last_wait_log > 10:
            self._last_wait_log = now
            log.warning("waiting for Kafka at %s (%s-%d): %s; retrying with backoff",
                        ",".join(self._config["bootstrap_servers"]), desc.topic, desc.partition, problem)

    def teardown(self) -> None:
        with _CONSUMER_LOCK:
            for key in [k for k in _CONSUMERS if k[0] == self._run_id]:
                try:
                    _CONSUMERS.pop(key)["consumer"].close()
                except Exception:  # noqa: BLE001
                    pass
