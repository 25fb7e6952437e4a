"""Library log lines and warnings that say nothing about the user's run, dropped at the CLI's entry point.

Each is matched by logger (or warning category) and message, so anything else a library logs or
warns still shows. Beam's optional GCP modules log on the root logger at import when the Google
client libraries are absent, which finpulse never needs (it talks to object stores through
delta-rs and pyarrow).
"""

from __future__ import annotations

import logging
import re

# (logger name, message pattern)
FOREIGN_LOG_LINES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("root", re.compile(r"^apitools not found, and bigquery client libraries are not available")),
)


class DropForeignLines(logging.Filter):
    """Drops the records of FOREIGN_LOG_LINES, keeps every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(record.name == name and pattern.search(record.getMessage())
                       for name, pattern in FOREIGN_LOG_LINES)


def quiet_foreign_noise() -> None:
    """Install the filter on the loggers named in FOREIGN_LOG_LINES (once; before the commands import Beam)."""
    for name in {name for name, _ in FOREIGN_LOG_LINES}:
        logger = logging.getLogger(None if name == "root" else name)
        if not any(isinstance(f, DropForeignLines) for f in logger.filters):
            logger.addFilter(DropForeignLines())
