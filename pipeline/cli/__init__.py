"""The `finpulse` command: every click command, the shared option decorators, and the one place
where errors become exit codes and messages.

`main` is the click group (`finpulse.pipeline.cli:main`, also `python -m finpulse.pipeline.cli`).
"""
from finpulse.pipeline.cli.main import main

__all__ = ["main"]
