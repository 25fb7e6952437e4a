"""The envelope types that travel between sources, parsing and the lake.

A source turns what it reads into `RawMessage`s (bytes plus where they came from); parsing keeps
the `Coordinates` on every dead letter so a bad record can be found again; the stream hands
`PartitionDesc`s to the Kafka source as its restrictions' seeds. A Kafka position is an offset
tagged with a log epoch (`to_position`), so monitoring can strip the epoch without the source. They live here, below every
concern, so that `sources/`, `enrich/` and `lake/` need not import each other for them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Positions are Kafka offsets tagged with a log epoch: position = epoch << 40 | offset.
# If a partition's log is reset below our position (topic recreated, or an in-memory broker
# restarted empty) Kafka hands back lower offsets; we then move to the next epoch, so the new
# log's records still get fresh, increasing positions and are neither skipped nor duplicated.
EPOCH_SHIFT = 40
OFFSET_MASK = (1 << EPOCH_SHIFT) - 1


def to_position(epoch: int, offset: int) -> int:
    """A Kafka offset under a log epoch as one lake position."""
    return (epoch << EPOCH_SHIFT) | offset


def split_position(position: int) -> tuple[int, int]:
    """A lake position back into (epoch, Kafka offset)."""
    return position >> EPOCH_SHIFT, position & OFFSET_MASK


@dataclass(frozen=True)
class Coordinates:
    """Where a raw message came from: Kafka (topic, partition, offset, timestamp) or an archive."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None
    source_ref: str | None = None  # archive file (backfill)
    source_row: int | None = None  # row within the archive file


@dataclass(frozen=True)
class PartitionDesc:
    """One Kafka topic-partition: the seed of one source restriction."""

    topic: str
    partition: int


@dataclass(frozen=True)
class RawMessage:
    """A message as read, with the lake source it belongs to and its commit position there."""

    coords: Coordinates
    value: bytes | None
    source: str  # progress key in the lake: kafka.<topic>.<partition> or file.<hash>
    position: int  # epoch-tagged Kafka offset, or row number in an archive file
