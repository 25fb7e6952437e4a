"""Unbounded Kafka source as a splittable DoFn: one restriction per topic-partition.

The restriction is an offset range [lake position, inf). Each call polls a batch from a cached
consumer (one per partition per worker, never reopened per poll), claims and emits the records,
then defers the remainder: on FnApiRunner that ends the bundle, so downstream writes and commits
every poll. Restrictions are never split except for that checkpoint, which keeps each partition's
commits in order. `--max-records` / `--idle-exit` finish restrictions by claiming their end.

A bundle holds one poll of every partition, so without a bound its size grew with the partition
count (6 partitions x 500 records: 3,000 records enriched before the first commit on a backlog).
`BundleBudget` caps the records of one bundle across all partitions, adapts that cap to the time
a bundle takes, and stops waiting on empty partitions, so a stream starting on a backlog commits
within seconds and keeps committing while it catches up.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration

from finpulse.pipeline.lake.commit import Lake, source_key
from finpulse.pipeline.messages import (  # noqa: F401 (OFFSET_MASK: re-exported for callers of this module)
    OFFSET_MASK,
    Coordinates,
    PartitionDesc,
    RawMessage,
    split_position,
    to_position,
)
from finpulse.pipeline.runtime import metrics
from finpulse.pipeline.runtime.settings import StreamSettings
from finpulse.pipeline.sources.membership import Assignment
from finpulse.pipeline.sources.restrictions import CheckpointOnlyTracker
from finpulse.schemas.errors import EX_TEMPFAIL

log = logging.getLogger(__name__)
END = sys.maxsize



@dataclass
class StopControl:
    """Bounded-run switches shared by all partitions of one run in one process."""

    max_records: int | None = None
    idle_exit: float | None = None
    emitted: int = 0
    idle_since: float | None = None  # first empty poll since records last arrived
    halt: str | None = None  # why every partition must stop now (the topic layout changed)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, n: int) -> int:
        """How many of n polled records may still be emitted (n == 0 marks an empty poll)."""
        with self.lock:
            if n == 0:
                if self.idle_since is None:
                    self.idle_since = time.monotonic()
                return 0
            self.idle_since = None  # time spent enriching a bundle is not idle time
            allowed = n if self.max_records is None else max(0, min(n, self.max_records - self.emitted))
            self.emitted += allowed
            return allowed

    def touch(self) -> None:
        """Something happened that must still be read (a detected log reset): not idle."""
        with self.lock:
            self.idle_since = None

    def should_stop(self) -> bool:
        if self.halt is not None:
            return True
        if self.max_records is not None and self.emitted >= self.max_records:
            return True
        return self.idle_exit is not None and self.idle_since is not None and time.monotonic() - self.idle_since > self.idle_exit


@dataclass
class BundleBudget:
    """What one bundle may read: at most `limit` records over all partitions, and no waiting on
    empty partitions once `seconds` have passed since the bundle started.

    The limit is bounded by rows and adapted to time: it starts at `initial` records, and after
    each bundle whose demand filled it, it moves to what the last bundle cycle processed per
    second x `seconds` (at most doubling per bundle, never above `records`). So a stream starting
    on a backlog commits a small first bundle within seconds on any machine, and bundles grow to
    `records` where the hardware keeps them within about `seconds`: the latency bound holds on a
    slow or busy CPU too, and a fast one gets full model batches.

    Each partition's call gets a fair share (the limit / the partitions that had records in the
    previous bundle), never more than what is left, so the bound holds whatever the number of
    partitions while one busy partition still gets the whole budget. Partitions the budget could
    not serve count as wanting, so the next bundle shares fairly again: nobody starves.

    Catching up: when more records were still waiting after a bundle (`waiting`, from each
    partition's high watermark) than that bundle read, the stream is behind, and the next bundle
    paces itself to `catchup_seconds` under a cap of `catchup_records` instead. Small bundles buy
    latency only for records that arrive to an idle pipeline; a record behind a backlog waits for
    the backlog whatever the bundle size, and small bundles make the backlog drain slower (each
    commit and each model call has a fixed cost: on 2 cores, where the 1 s pace had shrunk bundles,
    50 rows/s against 139 with 5 s and 2,000 records; on a quiet machine whose 1 s bundles already
    reach `records`, +4-14%, README "Latency"). Once caught up the limit falls back under `records`.
    """

    records: int  # the cap on any bundle while the stream keeps up
    seconds: float
    partitions: int
    initial: int = 32
    catchup_records: int = 0  # the cap while the stream is behind (0: `records`, no catching up)
    catchup_seconds: float = 0.0  # the time a bundle aims for while behind (0: `seconds`)
    limit: int = 0
    left: int = 0
    began: float | None = None
    deadline: float = 0.0
    share: int = 0
    wanting: int = -1  # partitions that had records (or got none of the budget) in this bundle; -1: none yet
    saturated: bool = False  # demand filled this bundle's limit (a partition used its whole grant or got none)
    largest: int = 0  # most records read by one bundle so far (for tests and the log)
    backlog: int = 0  # records the partitions read in this bundle still had waiting after it
    behind: bool = False  # this bundle is paced for catching up

    def start(self, now: float) -> None:
        used = self.limit - self.left
        self.behind = self.began is not None and self.saturated and self.backlog > used
        cap = max(self.records, self.catchup_records) if self.behind else self.records
        seconds = (self.catchup_seconds or self.seconds) if self.behind else self.seconds
        if self.began is None:
            self.limit = max(1, min(self.records, self.initial))
        elif self.saturated:
            cycle = now - self.began
            paced = self.limit * 2 if cycle <= 0 else int(used * seconds / cycle)
            self.limit = max(1, min(cap, self.limit * 2, max(paced, min(cap, 16))))
        self.limit = min(self.limit, cap)  # caught up: back under `records` at once
        previous = self.wanting if self.wanting > 0 else self.partitions
        self.share = max(1, math.ceil(self.limit / max(1, min(previous, self.partitions))))
        self.left, self.began, self.deadline = self.limit, now, now + self.seconds
        self.wanting, self.saturated, self.backlog = 0, False, 0

    def waiting(self, n: int) -> None:
        """A partition read in this bundle still has `n` records after what it read (high watermark)."""
        self.backlog += max(0, n)

    def grant(self) -> int:
        """Records the next partition may read in this bundle (0: defer it to the next bundle)."""
        granted = min(self.share, self.left)
        if granted == 0:
            self.wanting += 1
            self.saturated = True
        return granted

    def poll_timeout_ms(self, now: float, idle_ms: int = 250) -> int:
        """How long a poll may wait for records: nothing once the bundle's time is up."""
        return max(0, min(idle_ms, round((self.deadline - now) * 1000)))

    def spend(self, n: int, granted: int | None = None) -> None:
        """`n` records read after a grant of `granted` (a full grant means the partition had more)."""
        self.left -= n
        if n:
            self.wanting += 1
        if granted is not None and n >= granted:
            self.saturated = True
        self.largest = max(self.largest, self.limit - self.left)


_STOPS: dict[str, StopControl] = {}
_CONSUMERS: dict[tuple[str, str, int], Any] = {}
_CONSUMER_LOCK = threading.Lock()


def _fingerprint(value: bytes | None) -> str:
    return hashlib.blake2b(value or b"", digest_size=8).hexdigest()


def stop_control(run_id: str, max_records: int | None = None, idle_exit: float | None = None) -> StopControl:
    with _CONSUMER_LOCK:
        return _STOPS.setdefault(run_id, StopControl(max_records, idle_exit))


def halt_reason() -> str | None:
    """Why a run in this process stopped itself (partitions added), for the exit message; None if it did not."""
    with _CONSUMER_LOCK:
        return next((s.halt for s in _STOPS.values() if s.halt), None)




@dataclass
class TopicWatch:
    """Periodic metadata check of the topics a run reads (every FINPULSE_METADATA_CHECK_S, default 30 s).

    A deleted topic is reported (its partitions sit idle; if it is recreated, the log-reset check
    reads the new log from its start). Added partitions cannot join a running pipeline (its
    restrictions are fixed at start), so the run stops cleanly and exits EX_TEMPFAIL: a restart
    reads them from offset 0. Nothing is lost either way; without the check they were silently unread.
    """

    every: float = field(default_factory=lambda: StreamSettings().metadata_check_s)
    last: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)  # partitions per topic when first seen
    missing_logged: dict[str, float] = field(default_factory=dict)
    consumer: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, config: dict[str, Any], topic: str, stop: StopControl) -> None:
        self.counts.setdefault(topic, 0)  # 0: seen, partition count not known yet
        if time.monotonic() - self.last < self.every or not self.lock.acquire(blocking=False):
            return
        try:
            self.last = time.monotonic()
            if self.consumer is None:
                from kafka import KafkaConsumer

                self.consumer = KafkaConsumer(**config, group_id=None, request_timeout_ms=5000)
            existing = self.consumer.topics()  # always a fresh metadata request
            layout = {t: (self.consumer.partitions_for_topic(t) if t in existing else None) for t in list(self.counts)}
        except Exception:  # noqa: BLE001 - the broker may be away; the poll path reports that
            return
        finally:
            self.lock.release()
        for t, parts in layout.items():
            self._compare(t, parts, stop)

    def _compare(self, topic: str, parts: set[int] | None, stop: StopControl) -> None:
        if not parts:
            now = time.monotonic()
            if now - self.missing_logged.get(topic, -1e9) > 60:
                self.missing_logged[topic] = now
                log.error("topic %s no longer exists on the broker (deleted?): its partitions are idle; rows already in "
                          "the lake are kept, and if it is recreated its new log is read from the start", topic)
            return
        self.missing_logged.pop(topic, None)
        known = self.counts[topic] = self.counts[topic] or len(parts)
        if len(parts) > known and stop.halt is None:
            stop.halt = (f"topic {topic} now has {len(parts)} partitions, this run reads {known}; stopped cleanly "
                         f"so that a restart reads the new ones from their start (exit {EX_TEMPFAIL})")
            log.error("%s", stop.halt)


_WATCHES: dict[str, TopicWatch] = {}


class ReadKafkaPartitions(beam.DoFn, RestrictionProvider):
    """Emits RawMessages from each PartitionDesc; also its own restriction provider (needs the lake)."""

    def initial_restriction(self, element: PartitionDesc) -> OffsetRange:
        start = Lake(self._lake).committed(source_key(element.topic, element.partition))
        return OffsetRange(start, END)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return CheckpointOnlyTracker(restriction)

    def restriction_size(self, element: PartitionDesc, restriction: OffsetRange) -> int:
        return 1  # unbounded: size is meaningless, keep splitting heuristics away

    def split(self, element, restriction):
        yield restriction

    def __init__(self, client_config: dict[str, Any], lake: str, run_id: str, poll_records: int, max_message_bytes: int,
                 max_records: int | None, idle_exit: float | None, bundle_records: int = 256,
                 bundle_seconds: float = 1.0, partitions: int = 1, bundle_initial: int = 32,
                 flush_seconds: float = 1.0, flush_rows: int = 5000, catchup_records: int = 0,
                 catchup_seconds: float = 0.0, assignment: str | None = None) -> None:
        self._config = client_config
        self._assignment_path = assignment  # --join-group: the partitions Kafka's coordinator gave this process
        self._lake = lake
        self._run_id = run_id
        self._poll_records = poll_records
        self._fetch_bytes = max(max_message_bytes * 4, 8 * 1024 * 1024)
        self._max_records = max_records
        self._idle_exit = idle_exit
        self._flush_seconds = flush_seconds
        self._flush_rows = flush_rows
        self._last_wait_log = 0.0
        self._bundle_records = bundle_records
        self._bundle_seconds = bundle_seconds
        self._partitions = partitions
        self._bundle_initial = bundle_initial
        self._catchup = (catchup_records, catchup_seconds)

    def setup(self) -> None:
        self._stop = stop_control(self._run_id, self._max_records, self._idle_exit)
        self._budget = BundleBudget(self._bundle_records, self._bundle_seconds, self._partitions,
                                    initial=self._bundle_initial, catchup_records=self._catchup[0],
                                    catchup_seconds=self._catchup[1])
        with _CONSUMER_LOCK:
            self._watch = _WATCHES.setdefault(self._run_id, TopicWatch())
        self._assignment = Assignment(self._assignment_path) if self._assignment_path else None

    def start_bundle(self) -> None:
        self._budget.start(time.monotonic())

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
                entry = _CONSUMERS[key] = {"consumer": consumer, "tp": tp, "next": None, "reset": None, "checked": 0.0, "last": None}
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
        self._watch.check(self._config, element.topic, self._stop)
        if self._assignment is not None and not self._owned(element, restriction):
            tracker.defer_remainder(Duration.of(0.5))  # another process reads it now; look again later
            return
        granted = self._budget.grant()
        if granted == 0:  # this bundle has read its share: the partition is read first thing next bundle
            tracker.defer_remainder(Duration.of(0))
            return
        entry = self._consumer(element)
        consumer, tp = entry["consumer"], entry["tp"]
        epoch, expected = split_position(restriction.start)
        if entry.get("resume") is not None:  # just assigned: where the lake says (see _owned)
            if entry["resume"] >= restriction.start:
                epoch, expected = split_position(entry["resume"])
            else:
                entry["resume"] = None
        if entry["reset"] is not None and entry["reset"][0] > epoch:
            epoch, expected = entry["reset"]  # a detected log reset we have not read from yet
        # Flush policy (on top of the bundle budget, which caps a bundle at `granted` records for
        # this partition): keep polling until this partition's bundle holds flush_rows records or
        # flush_seconds have passed since its last bundle, so a trickle makes one commit per
        # flush_seconds instead of one per poll (one small file per table per poll otherwise).
        since_flush = entry.setdefault("flushed", time.monotonic())
        emitted = 0
        while True:
            if entry["next"] != to_position(epoch, expected):
                consumer.seek(tp, expected)
                entry["next"] = to_position(epoch, expected)
            now = time.monotonic()
            remaining_ms = int(max(0.0, since_flush + self._flush_seconds - now) * 1000)
            wait_ms = min(250, remaining_ms) if emitted else self._budget.poll_timeout_ms(now)
            room = min(self._poll_records, granted - emitted, max(1, self._flush_rows - emitted))
            try:
                batch = consumer.poll(timeout_ms=wait_ms, max_records=room).get(tp, [])
            except Exception as exc:  # noqa: BLE001 - the broker may be away; keep retrying with backoff
                self._log_waiting(element, f"poll failed: {exc}")
                batch = []
            if batch and batch[0].offset < expected:  # the client reset an out-of-range position
                epoch += 1
                self._log_reset(element, expected, batch[0].offset, epoch)
            # an empty poll while a bundle is filling is not idleness (its rows are not even enriched yet)
            allowed = self._stop.take(len(batch)) if batch or not emitted else 0
            self._budget.spend(allowed, room if len(batch) >= room and emitted + allowed >= granted else None)
            # every poll, records or not: a partition taken over after the feed ended still shows its lag (0)
            metrics.observe_highwater(element.topic, element.partition, consumer.highwater(tp))
            source = source_key(element.topic, element.partition)
            for rec in batch[:allowed]:
                position = to_position(epoch, rec.offset)
                if not tracker.try_claim(position):
                    return
                entry["next"] = position + 1
                entry["reset"] = entry["resume"] = None
                coords = Coordinates(topic=rec.topic, partition=rec.partition, offset=rec.offset,
                                     timestamp_ms=rec.timestamp)
                yield RawMessage(coords, rec.value, source, position)
            emitted += allowed
            if allowed:  # remember only the last record: it is what a later log check re-reads
                entry["last"] = (batch[allowed - 1].offset, _fingerprint(batch[allowed - 1].value))
            if allowed < len(batch):
                entry["next"] = None  # we stopped mid-batch: re-seek if this partition is read again
                break
            if not batch and not emitted:
                self._verify_log(element, entry, epoch, expected)
                break
            if (emitted >= granted or emitted >= self._flush_rows or self._stop.should_stop()
                    or time.monotonic() - since_flush >= self._flush_seconds):
                break
            if batch:
                epoch, expected = split_position(entry["next"])
        if emitted:
            entry["flushed"] = time.monotonic()
            highwater = consumer.highwater(tp)  # from the last fetch: what this partition still holds
            if highwater is not None and entry["next"] is not None:
                self._budget.waiting(highwater - split_position(entry["next"])[1])
        tracker.defer_remainder(Duration.of(0 if emitted else 0.2))

    def _owned(self, desc: PartitionDesc, restriction: OffsetRange) -> bool:
        """--join-group: is this partition assigned to this process now? On a new assignment (or
        a new claim of it), read on from the lake's position, wherever other processes left it.

        The restriction's positions only grow (this worker may have read ahead of what it
        committed before it lost the partition), so a lake position below them is read under the
        next log epoch: same offsets, higher positions (messages.py)."""
        assert self._assignment is not None
        token = self._assignment.tokens().get(source_key(desc.topic, desc.partition))
        if token is None:
            with _CONSUMER_LOCK:
                entry = _CONSUMERS.get((self._run_id, desc.topic, desc.partition))
            if entry is not None and entry.get("token") is not None:
                entry["token"] = None
                metrics.forget_partition(desc.topic, desc.partition)  # its lag is the new owner's to report
            return False
        entry = self._consumer(desc)
        if entry.get("token") != token:
            entry["token"] = token
            position = Lake(self._lake).committed(source_key(desc.topic, desc.partition))
            if position < restriction.start:
                position = to_position(split_position(restriction.start)[0] + 1, split_position(position)[1])
            entry["resume"] = position
            entry["next"], entry["reset"], entry["last"] = None, None, None
            metrics.observe_position(desc.topic, desc.partition, split_position(position)[1])
            log.info("%s-%d: reading from offset %d (owner token %d)", desc.topic, desc.partition,
                     split_position(position)[1], token)
        return True

    def _verify_log(self, desc: PartitionDesc, entry: dict, epoch: int, expected: int) -> None:
        """While idle, re-read the last record we consumed every few seconds and compare fingerprints.

        Same record: the log is intact (and the broker reachable). A different record, a lower
        offset, or a position the client reset below it: the log was replaced (topic recreated,
        or an in-memory broker restarted empty), so we read it again in a new epoch. Log-end
        offsets are not used: some Kafka-compatible brokers report them wrongly.
        """
        now = time.monotonic()
        last = entry.get("last")
        if now - entry["checked"] < 3.0:
            return
        if last is None:  # e.g. just restarted: no fingerprint yet
            if expected > 0:
                entry["checked"] = now
                self._probe_log(desc, entry, epoch, expected)
            return
        entry["checked"] = now
        consumer, tp = entry["consumer"], entry["tp"]
        last_offset, fingerprint = last
        entry["next"] = None  # we move the position: re-seek on the next call
        try:
            consumer.seek(tp, last_offset)
            got = consumer.poll(timeout_ms=1000, max_records=1).get(tp, [])
            position = consumer.position(tp, timeout_ms=1000)
        except Exception as exc:  # noqa: BLE001
            self._log_waiting(desc, f"broker not reachable ({type(exc).__name__}: {exc})")
            return
        if got and got[0].offset == last_offset and _fingerprint(got[0].value) == fingerprint:
            return
        if got or (position is not None and position < last_offset):
            try:
                begin = consumer.beginning_offsets([tp], timeout_ms=2000)[tp] or 0
            except Exception:  # noqa: BLE001
                return  # try again on the next check
        else:
            # Nothing conclusive (the broker is away, still starting, or the new log is shorter).
            # One round trip tells the operator which of these it is.
            try:
                consumer.beginning_offsets([tp], timeout_ms=1000)
            except Exception as exc:  # noqa: BLE001
                self._log_waiting(desc, f"broker not reachable ({type(exc).__name__})")
            return
        entry["reset"] = (epoch + 1, begin)
        self._stop.touch()  # the new log is still to be read: --idle-exit must not end the run first
        entry["last"] = None
        self._log_reset(desc, expected, begin, epoch + 1)

    def _probe_log(self, desc: PartitionDesc, entry: dict, epoch: int, expected: int) -> None:
        """Without a fingerprint (after a restart), look for the last record we consumed.

        Found: remember its fingerprint, so later resets are caught by `_verify_log`. Absent while
        an earlier offset exists, on two probes in a row: the log now ends below our position
        (it was replaced while we were down), so read it from its start as a new epoch. Without
        this, a restarted stream waited silently and then skipped the new log's first records.
        """
        consumer, tp = entry["consumer"], entry["tp"]
        entry["next"] = None  # we move the position: re-seek on the next call
        try:
            consumer.seek(tp, expected - 1)
            got = consumer.poll(timeout_ms=1000, max_records=1).get(tp, [])
            if got and got[0].offset >= expected - 1:
                if got[0].offset == expected - 1:
                    entry["last"] = (expected - 1, _fingerprint(got[0].value))
                entry["shorter"] = 0
                return
            consumer.seek(tp, 0)
            first = consumer.poll(timeout_ms=1000, max_records=1).get(tp, [])
        except Exception as exc:  # noqa: BLE001
            self._log_waiting(desc, f"broker not reachable ({type(exc).__name__}: {exc})")
            return
        if not first or first[0].offset >= expected - 1:
            entry["shorter"] = 0  # empty log or broker away: nothing conclusive
            return
        entry["shorter"] = entry.get("shorter", 0) + 1
        if entry["shorter"] >= 2:
            entry["shorter"] = 0
            entry["reset"] = (epoch + 1, first[0].offset)
            self._stop.touch()
            self._log_reset(desc, expected, first[0].offset, epoch + 1)

    @staticmethod
    def _log_reset(desc: PartitionDesc, expected: int, new_offset: int, epoch: int) -> None:
        log.error("%s-%d: log was reset below offset %d (topic recreated or broker lost its data); "
                  "reading it again from offset %d as epoch %d", desc.topic, desc.partition, expected, new_offset, epoch)

    def _log_waiting(self, desc: PartitionDesc, problem: str | None) -> None:
        now = time.monotonic()
        if problem and now - self._last_wait_log > 10:
            self._last_wait_log = now
            log.warning("waiting for Kafka at %s (%s-%d): %s; retrying with backoff",
                        ",".join(self._config["bootstrap_servers"]), desc.topic, desc.partition, problem)

    def teardown(self) -> None:
        with _CONSUMER_LOCK:
            for key in [k for k in _CONSUMERS if k[0] == self._run_id]:
                with contextlib.suppress(Exception):
                    _CONSUMERS.pop(key)["consumer"].close()
            watch = _WATCHES.pop(self._run_id, None)
            if watch is not None and watch.consumer is not None:
                with contextlib.suppress(Exception):
                    watch.consumer.close()
