"""The envelope types that travel between sources, parsing and the lake.

A source turns what it reads into `RawMessage`s (bytes plus where they came from); parsing keeps
the `Coordinates` on every dead letter so a bad record can be found again; the stream hands
`PartitionDesc`s to the Kafka source as its restrictions' seeds. They live here, below every
concern, so that `sources/`, `enrich/` and `lake/` need not import each other for them.
"""

from __future__ import annotations

from dataclasses import dataclass


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
