"""Core time per stage of the enrichment path: what `finpulse bench` reports as `host_stages`.

Why it exists: on a GPU the host side binds (issue #18), and a profiler run once on one machine
does not let two machines be compared. Every stage of the real path (parse, tokenise, pad,
copy to device, forward, decode, entities, linking, row building, Arrow, commit) is wrapped in
`stage(name)`, so the same table comes out of any run that turns the accounting on.

Off by default: `stage(name)` then returns one shared no-op object (one global read and one
call per use; there are a few per bundle and two per post). When on, a stage adds the CPU time
of its own thread (`time.thread_time_ns`: core time, not wall time, so a stage running in another
thread, like tokenising beside the forward pass, is counted in full, and waiting is not) to a
process-wide table. Stages nest: an inner stage's time is taken out of the outer one's, so the
table adds up to the time spent inside any stage.

`PROCESS_WIDE` stages (the forward pass) count the CPU time of the whole process instead,
because PyTorch spreads one forward pass over its own intra-op threads; anything else running in
another thread meanwhile (the tokeniser of the next chunk) is then counted there too, a small
over-count that `finpulse bench` names.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

PROCESS_WIDE = frozenset({"forward"})

_on = False
_first_ns: int | None = None  # process CPU time when the first stage was entered (start-up ends there)
_totals: dict[str, int] = defaultdict(int)  # stage -> nanoseconds of core time
_calls: dict[str, int] = defaultdict(int)
_lock = threading.Lock()
_local = threading.local()


class _Noop:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NOOP = _Noop()


class _Stage:
    __slots__ = ("name", "start", "inner", "clock")

    def __init__(self, name: str) -> None:
        self.name = name
        self.inner = 0
        self.clock = time.process_time_ns if name in PROCESS_WIDE else time.thread_time_ns

    def __enter__(self) -> None:
        global _first_ns
        if _first_ns is None:
            _first_ns = time.process_time_ns()
        stack = _local.__dict__.setdefault("stack", [])
        stack.append(self)
        self.start = self.clock()

    def __exit__(self, *exc: Any) -> None:
        spent = self.clock() - self.start
        stack = _local.stack
        stack.pop()
        if stack:
            stack[-1].inner += spent
        with _lock:
            _totals[self.name] += max(0, spent - self.inner)
            _calls[self.name] += 1


def stage(name: str) -> _Stage | _Noop:
    """`with stage("tokenise"): ...` counts the block's core time under that name when accounting is on."""
    return _Stage(name) if _on else _NOOP


def enable(on: bool = True) -> None:
    """Turn the accounting on (and clear the table) or off, for this process."""
    global _on, _first_ns
    with _lock:
        _totals.clear()
        _calls.clear()
        _on, _first_ns = on, None


def enabled() -> bool:
    return _on


def first_entered_ms() -> float | None:
    """Process CPU milliseconds (time.process_time) when the first stage began since `enable`:
    what was spent before it is start-up (imports, model loading, reading the lake's state)."""
    return None if _first_ns is None else _first_ns / 1e6


def totals() -> dict[str, tuple[float, int]]:
    """stage -> (core milliseconds, times entered), since `enable`."""
    with _lock:
        return {name: (ns / 1e6, _calls[name]) for name, ns in _totals.items()}
