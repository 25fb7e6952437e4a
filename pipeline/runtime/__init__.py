"""Runtime: how the pipeline runs on Beam here.

- `settings.py`: typed settings from defaults, environment and flags.
- `runner.py`: the local runner, splittable-DoFn checkpoints kept in multi-worker mode.
- `beam_patches.py`, `beam_internals.py`: guarded fixes to Beam internals, loud when they move.
- `memory_env.py`: the native-memory settings the stream applies to itself.
- `dask_runner.py`: batch jobs on a Dask cluster through Beam's DaskRunner (and the fix it needs).
- `metrics.py`: Prometheus metrics, `/healthz`, `/readyz`.
- `stages.py`: core time per stage of the enrichment path (what `finpulse bench` reports).

Every other package may import it. May import: `schemas`.
"""
