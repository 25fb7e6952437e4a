"""The `finpulse` command: every click command, the shared option decorators, and the one place
where errors become exit codes and messages.

- `main.py`: the click group and the error -> exit code mapping.
- `options.py`: option decorators and value types shared by every command.
- `quiet.py`: library warnings that say nothing about the user's run, dropped at the entry point.
- `pipeline.py`: `broker`, `produce`, `stream`, `backfill`, `rescore`, `query`, `alerts`.
- `ops.py`: `lake check`, `lake optimize`, `lake migrate`.
- `status.py`: `status`.
- `models.py`: `train`, `eval`, `shrink`.
- `training.py`: `refit-head`, `train-entity-head`, `cards` (the steps after `train` that make the shipped artifacts).
- `dashboard.py`: `dashboard`, `bench-dashboard`.
- `devtools.py`: `bench`, `bench-precision`, `simulate-alerts`, `demo`, `bench-int8`, `bench-stories`, `bench-lake`,
  `realtext-eval`, `gazetteer build`.
- `chaos.py`: `chaos ...` (kill, outage, load, soak).
- `market.py`: `prices load`, `signal`, `compare-detectors` (prices beside sentiment).
- `config.py`: `config show`, the effective settings and their sources.
- `__main__.py`: `python -m finpulse.pipeline.cli`.

`main` is the click group (`finpulse.pipeline.cli:main`). May import: everything.
"""
from finpulse.pipeline.cli.main import main

__all__ = ["main"]
