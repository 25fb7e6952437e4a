"""Runtime: how the pipeline runs on Beam here.

Typed settings from defaults, environment and flags (`settings.py`), the local runner with
splittable-DoFn checkpoints kept in multi-worker mode (`runner.py`), fixes to Beam internals
(`beam_patches.py`) and the native-memory settings the stream applies to itself (`memory_env.py`).
Imports nothing of finpulse's but `errors`, so every other package may import it.
"""
