"""Sources: where records come from, as raw bytes with their coordinates.

- `kafka.py`: the Kafka splittable DoFn, one restriction per topic-partition, starting where the lake ends.
- `kafka_xlang.py`: Beam's Java KafkaIO, for runners that have it.
- `archive.py`: archive readers for backfill.
- `chunks.py`: archive files cut into chunk sources (any runner, Dask included), planned against the lake.
- `membership.py`: this process's partitions as Kafka's group coordinator assigns them (`stream --join-group`).
- `restrictions.py`: the restriction tracker they share.

Sources read the lake only to learn where to resume; they never parse or enrich.
May import: `pipeline.messages`, `pipeline.lake`, `pipeline.runtime`, `pipeline.enrich.parse`, `schemas`.
"""
