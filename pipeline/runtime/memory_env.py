"""Native-memory settings the stream applies to itself (see docs/RELIABILITY.md, "Soak memory").

Long runs of `finpulse stream` grew in native memory, not in Python objects: oneDNN caches a
compiled kernel per input shape (every bundle brings new batch x sequence shapes; 1,024 entries
by default) and glibc spreads freed memory over up to 8 x cores malloc arenas. Both are set by
environment variables that are read once, at start-up: oneDNN's when torch first uses it, glibc's
when the process starts. So the stream re-executes itself once, same argv, with the missing ones
added. A variable the user already set is never touched; `FINPULSE_MEMORY_ENV=off` adds none.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "FINPULSE_MEMORY_ENV"  # set by the re-exec ("applied"), or by the user to opt out
DEFAULTS: dict[str, str] = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "MALLOC_ARENA_MAX": "2"}
# other spellings that already decide the same setting
ALIASES: dict[str, tuple[str, ...]] = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": ("DNNL_PRIMITIVE_CACHE_CAPACITY",),
                                       "MALLOC_ARENA_MAX": ()}
TUNABLES = {"MALLOC_ARENA_MAX": "glibc.malloc.arena_max"}  # its GLIBC_TUNABLES name


def _user_set(name: str, environ: Mapping[str, str]) -> bool:
    if name in environ or any(a in environ for a in ALIASES.get(name, ())):
        return True
    tunable = TUNABLES.get(name)
    return tunable is not None and tunable + "=" in environ.get("GLIBC_TUNABLES", "")


def memory_env_to_add(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to `environ` (with the marker), or {} when nothing is to be done:
    the marker is there (already re-executed, or opted out) or the user set every variable."""
    if MARKER in environ:
        return {}
    missing = {k: v for k, v in DEFAULTS.items() if not _user_set(k, environ)}
    return {**missing, MARKER: "applied"} if missing else {}


def _is_finpulse_process() -> bool:
    """True when this process was started as finpulse (console script or `python -m finpulse...`),
    not when a command runs inside another program (click's CliRunner in pytest): never exec those."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return (getattr(spec, "name", None) or "").startswith("finpulse.") or Path(sys.argv[0]).name == "finpulse"


def apply_memory_env() -> None:
    """Re-execute this process once with the missing memory variables; returns if none are missing
    (or in-process, where exec would replace the host program). Call before torch is imported."""
    add = memory_env_to_add(os.environ)
    if not add:
        return
    if not _is_finpulse_process():
        log.debug("not re-executing inside %s; memory variables not applied: %s", sys.argv[0], ", ".join(add))
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # argv[0] as the full interpreter path: a bare "python" could resolve outside the venv
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **add})
