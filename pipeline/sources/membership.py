"""This process's share of the topics, as Kafka's consumer-group coordinator assigns it.

With `finpulse stream --join-group`, several stream processes (on one machine or many) read the
same topics into the same lake: each joins `--group` with one kafka-python consumer that only
takes part in the group protocol (its partitions are paused, so it fetches nothing), and the
broker's coordinator decides who reads which partition, rebalancing when a process joins, leaves
or stops heartbeating. No scheduler of ours decides anything.

On each assignment the new partitions are claimed in the lake (`Lake.claim`: a fencing token per
partition, see lake/commit.py) and the assignment, with the tokens, is published to a small file
that the reading and committing steps check (`Assignment`): they may run in other processes
(`--workers N` runs Beam's SDK workers as subprocesses), so a file beside the run is the one
channel all of them can read. A revoked partition leaves the file before the rebalance completes
(kafka-python calls `on_partitions_revoked` before re-joining), so this process stops reading it;
a process paused past its session (SIGSTOP, a long GC, a network cut) cannot hear that in time,
and the lake's fencing refuses its commits instead.

Group offsets are committed by this member from the lake's positions every few seconds, after
the lake (the lake stays the source of truth; the offsets are for lag tools).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import ConsumerRebalanceListener

from finpulse.pipeline.lake.commit import Lake, source_key
from finpulse.pipeline.messages import OFFSET_MASK

log = logging.getLogger(__name__)

# Against Tansu, group joins wait for the slowest member's rebalance timeout (kafka-python's
# max_poll_interval_ms); with the defaults (5 min) a join took minutes. Seconds keep rebalances,
# and the takeover of a dead process's partitions, within seconds; the member's own poll loop
# runs every POLL_S, far inside both.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000
MAX_POLL_INTERVAL_MS = 10000
POLL_S = 0.2
OFFSETS_EVERY_S = 2.0


@dataclass
class Assignment:
    """The published assignment: source -> owner token, read by the reader and the writer.

    Reads are cached for `every` seconds (a stat per call otherwise)."""

    path: str
    every: float = 0.2
    _read_at: float = 0.0
    _mtime: float = -1.0
    _tokens: dict[str, int] = field(default_factory=dict)

    def tokens(self) -> dict[str, int]:
        now = time.monotonic()
        if now - self._read_at >= self.every:
            self._read_at = now
            try:
                mtime = os.stat(self.path).st_mtime_ns
                if mtime != self._mtime:
                    self._tokens = {k: int(v) for k, v in json.loads(Path(self.path).read_text()).items()}
                    self._mtime = mtime
            except (OSError, ValueError):
                self._tokens = {}  # not published yet (or mid-replace): nothing is ours
        return self._tokens

    @staticmethod
    def publish(path: str, tokens: dict[str, int]) -> None:
        """Replace the file atomically (readers never see half of it)."""
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".assignment-")
        with os.fdopen(fd, "w") as fh:
            json.dump(tokens, fh)
        os.replace(tmp, path)


class GroupMembership:
    """One group member for this process; `start()` joins, `close()` leaves (handing the partitions on at once)."""

    def __init__(self, client_config: dict[str, Any], group: str, topics: list[str], lake: str, path: str) -> None:
        self._config = client_config
        self._group = group
        self._topics = topics
        self._lake = Lake(lake)
        self.path = path
        self._tokens: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="finpulse-group-member", daemon=True)
        self._consumer: Any = None
        self.rebalances = 0
        Assignment.publish(path, {})

    def start(self) -> GroupMembership:
        from kafka import KafkaConsumer

        self._consumer = KafkaConsumer(
            **self._config, group_id=self._group, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS,
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS, request_timeout_ms=max(15000, SESSION_TIMEOUT_MS + 5000))
        self._consumer.subscribe(topics=self._topics, listener=_Listener(self))
        self._thread.start()
        return self

    # -- the rebalance listener's two calls (inside poll, on the member thread) --------------------
    def revoked(self, partitions) -> None:
        gone = {source_key(tp.topic, tp.partition) for tp in partitions}
        self._tokens = {s: t for s, t in self._tokens.items() if s not in gone}
        Assignment.publish(self.path, self._tokens)  # stop reading them before the rebalance completes
        if gone:
            log.info("group %s: partitions revoked: %s", self._group, ", ".join(sorted(gone)))

    def assigned(self, partitions) -> None:
        self.rebalances += 1
        self._consumer.pause(*partitions)  # this consumer only holds the membership; the reader fetches
        mine = {source_key(tp.topic, tp.partition) for tp in partitions}
        new = mine - set(self._tokens)
        tokens = self._lake.claim(new)  # fences whoever held them before
        self._tokens = {s: t for s, t in self._tokens.items() if s in mine} | tokens
        Assignment.publish(self.path, self._tokens)
        log.info("group %s: this process now reads %d partitions: %s (claimed %s)", self._group, len(mine),
                 ", ".join(sorted(mine)) or "none", ", ".join(f"{s}@{t}" for s, t in sorted(tokens.items())) or "none")

    # -- the member thread ----------------------------------------------------------------------
    def _run(self) -> None:
        last_offsets = 0.0
        while not self._stop.is_set():
            try:
                self._consumer.poll(timeout_ms=int(POLL_S * 1000))  # heartbeats, joins, rebalance callbacks
                if time.monotonic() - last_offsets >= OFFSETS_EVERY_S:
                    last_offsets = time.monotonic()
                    self._commit_offsets()
            except Exception as exc:  # noqa: BLE001 - the broker may be away: keep trying, say so
                log.warning("group %s: %s: %s; retrying", self._group, type(exc).__name__, exc)
                self._stop.wait(1.0)

    def _commit_offsets(self) -> None:
        """Mirror the lake's positions of this process's partitions into the group's offsets."""
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        if not self._tokens:
            return
        positions = self._lake.all_committed(self._tokens)
        offsets = {}
        for source, end in positions.items():
            if end:
                topic, _, partition = source[len("kafka."):].rpartition(".")
                offsets[TopicPartition(topic, int(partition))] = OffsetAndMetadata(end & OFFSET_MASK, "", -1)
        if offsets:
            with contextlib.suppress(Exception):  # a rebalance in progress refuses commits: next time
                self._consumer.commit(offsets)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()  # leaves the group: the others take these partitions at once


class _Listener(ConsumerRebalanceListener):
    """kafka-python's rebalance callbacks, forwarded to the membership."""

    def __init__(self, member: GroupMembership) -> None:
        self._member = member

    def on_partitions_revoked(self, revoked) -> None:
        self._member.revoked(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        self._member.assigned(assigned)
