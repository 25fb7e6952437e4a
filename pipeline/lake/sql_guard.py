"""Guards for DuckDB connections over the lake: read-only SQL, confined file access, bad files skipped.

`finpulse query` runs arbitrary SQL by design, so the guard is not in the SQL text but in the
connection: only SELECT/EXPLAIN statements run, file access is limited to the lake folder and
the configuration is locked (no COPY TO, ATTACH, INSTALL, read_text('/etc/...'), SET).
A corrupt Parquet file in the lake (a bad disk, a stray copy) is skipped with a warning instead
of failing every query: the good files stay queryable.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import duckdb

from finpulse.schemas.errors import FinpulseError

log = logging.getLogger(__name__)

READ_ONLY_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class ReadOnlyViolation(FinpulseError, duckdb.PermissionException):
    """A statement that would change state or touch files; `finpulse query` answers it as a query error."""


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but SELECT / EXPLAIN (COPY, ATTACH, SET, CREATE, INSTALL, PRAGMA, CALL ...)."""
    for statement in con.extract_statements(sql):
        if statement.type not in READ_ONLY_STATEMENTS:
            raise ReadOnlyViolation(f"only read-only queries (SELECT, EXPLAIN) run over the lake; "
                                    f"refused a {statement.type.name} statement")


def lock_down(con: duckdb.DuckDBPyConnection, lake: str | Path) -> None:
    """Confine file access to the lake folder and lock the configuration (call after the views exist)."""
    folders = sorted({str(Path(lake)).rstrip("/") + "/", str(Path(lake).resolve()).rstrip("/") + "/"})
    con.execute("SET allowed_directories = ?", [folders])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def create_parquet_view(con: duckdb.DuckDBPyConnection, view: str, files: list[Path], options: str) -> list[Path]:
    """CREATE VIEW over exactly `files` (a table version's list); if a file is unreadable, over
    the other files. Returns the skipped files.

    DuckDB reads every footer when the view is created (union_by_name), and names the file it
    could not read: drop that one and try again.
    """
    remaining = list(files)
    skipped: list[Path] = []
    source = "[" + ", ".join(_quote(str(f)) for f in remaining) + "]"
    while True:
        try:
            con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet({source}, {options})")
            return skipped
        except duckdb.Error as exc:
            bad = _named_file(str(exc), remaining)
            if bad is None:
                raise
            remaining.remove(bad)
            skipped.append(bad)
            log.warning("skipping unreadable lake file %s (%s); move it aside with `finpulse lake-check --quarantine`",
                        bad, str(exc).splitlines()[0])
            if not remaining:
                return skipped  # the caller defines the empty view
            source = "[" + ", ".join(_quote(str(f)) for f in remaining) + "]"


def _named_file(message: str, files: list[Path]) -> Path | None:
    quoted = set(re.findall(r"[\"']([^\"']+\.parquet)[\"']", message))
    return next((f for f in files if str(f) in quoted), None)
