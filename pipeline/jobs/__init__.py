"""Jobs: the two pipelines and the transforms they share.

`stream.py` (Kafka -> parse -> enrich -> lake, unbounded) and `backfill.py` (archives through the same
transforms, bounded) compose the concerns below them; `transforms.py` holds the Beam DoFns both use.
May import every package but `cli` and `devtools`.
"""
