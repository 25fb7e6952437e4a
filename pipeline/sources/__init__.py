"""Sources: where records come from, as raw bytes with their coordinates.

The Kafka splittable DoFn (`kafka.py`, one restriction per topic-partition, starting where the lake
ends), Beam's Java KafkaIO as an option (`kafka_xlang.py`), archive readers for backfill (`archive.py`)
and the restriction tracker they share (`restrictions.py`). Sources read the lake only to learn where
to resume; they never parse or enrich. May import `messages`, `lake`, `enrich.parse` and `schemas`.
"""
