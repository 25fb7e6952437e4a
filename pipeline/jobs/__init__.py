"""Jobs: the pipelines and the transforms they share.

- `stream.py`: Kafka -> parse -> enrich -> lake, unbounded.
- `backfill.py`: archives through the same transforms, bounded.
- `rescore.py`: lake rows re-enriched with another model version, in chunks.
- `batch.py`: what backfill and rescore share: the local or Dask pipeline, the progress bar.
- `transforms.py`: the Beam DoFns they all use.

May import: `pipeline.sources`, `pipeline.enrich`, `pipeline.lake`, `pipeline.runtime`, `pipeline.messages`,
`models.engine`, `models.artifacts`, `models.core`, `schemas`.
"""
