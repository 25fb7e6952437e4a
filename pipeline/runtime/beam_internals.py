"""The private parts of Beam that finpulse patches or subclasses, checked before we rely on them.

`beam_patches.py` replaces `fn_runner.consolidate_monitoring_infos`, and `runner.py` overrides
`FnApiRunner._get_bundle_manager` and re-implements `ParallelBundleManager.process_bundle` using
the manager's private fields. None of that is Beam's public API: an upgrade can rename or reshape
it, and a patch of a name that no longer exists does nothing, silently (the memory leak or the
lost checkpoints come back). So every such name is listed here and checked when the runtime
package imports them; a mismatch raises `BeamInternalsChanged` naming the Beam version and what
moved, and tests/pipeline/runtime/test_beam_internals.py pins that the check passes on the pinned Beam.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

from finpulse.schemas.errors import FinpulseError

FN_RUNNER = "apache_beam.runners.portability.fn_api_runner.fn_runner"


class BeamInternalsChanged(FinpulseError):
    """A Beam private attribute we patch has moved: pin apache-beam to the tested version or update the patch."""


@dataclass(frozen=True)
class Internal:
    module: str
    path: str  # attribute path inside the module, e.g. "ParallelBundleManager.process_bundle"
    parameters: tuple[str, ...] | None = None  # the callable's parameter names, when we call or override it
    uses: tuple[str, ...] = ()  # private names its source must still mention (fields set in __init__)
    why: str = ""


INTERNALS: tuple[Internal, ...] = (
    Internal(FN_RUNNER, "consolidate_monitoring_infos", why="beam_patches: replaced by an eager version"),
    Internal("apache_beam.metrics.monitoring_infos", "consolidate", parameters=("metrics", "key"),
             why="beam_patches and runner: merges MonitoringInfos"),
    Internal("apache_beam.metrics.monitoring_infos", "to_key", why="beam_patches: consolidate's default key"),
    Internal(FN_RUNNER, "FnApiRunner._get_bundle_manager", parameters=("self", "bundle_context_manager"),
             why="runner: overridden to return the checkpointing bundle manager"),
    Internal(FN_RUNNER, "ParallelBundleManager.process_bundle",
             parameters=("self", "inputs", "expected_outputs", "fired_timers", "expected_output_timers", "dry_run"),
             why="runner: re-implemented to keep the workers' residual roots"),
    Internal(FN_RUNNER, "ParallelBundleManager.__init__", uses=("_num_workers",),
             why="runner: the worker count it partitions over"),
    Internal(FN_RUNNER, "BundleManager.__init__",
             parameters=("self", "bundle_context_manager", "progress_frequency", "cache_token_generator"),
             uses=("self.bundle_context_manager", "self._progress_frequency", "self._cache_token_generator"),
             why="runner: builds one BundleManager per worker from the parallel manager's fields"),
    Internal(FN_RUNNER, "BundleManager.process_bundle",
             parameters=("self", "inputs", "expected_outputs", "fired_timers", "expected_output_timers", "dry_run"),
             why="runner: runs each worker's part"),
)


def _resolve(internal: Internal) -> object:
    obj: object = importlib.import_module(internal.module)
    for part in internal.path.split("."):
        obj = getattr(obj, part)
    return obj


def problems(internals: tuple[Internal, ...] = INTERNALS) -> list[str]:
    """What no longer matches, one line each (empty when every internal is where we expect it)."""
    out = []
    for internal in internals:
        name = f"{internal.module}.{internal.path}"
        try:
            obj = _resolve(internal)
        except (ImportError, AttributeError) as exc:
            out.append(f"{name} is gone ({exc}); used by {internal.why}")
            continue
        if internal.parameters is not None:
            params = tuple(inspect.signature(obj).parameters)  # type: ignore[arg-type]
            if params[: len(internal.parameters)] != internal.parameters:
                out.append(f"{name} takes {params}, expected {internal.parameters}; used by {internal.why}")
        if internal.uses:
            source = inspect.getsource(obj)  # type: ignore[arg-type]
            missing = [u for u in internal.uses if u not in source]
            if missing:
                out.append(f"{name} no longer sets {', '.join(missing)}; used by {internal.why}")
    return out


def check_beam_internals(internals: tuple[Internal, ...] = INTERNALS) -> None:
    """Raise BeamInternalsChanged if anything we patch has moved; called where the patches are applied."""
    found = problems(internals)
    if found:
        from apache_beam.version import __version__

        raise BeamInternalsChanged(
            f"apache-beam {__version__} differs from the version finpulse's Beam patches were written for (2.77.0): "
            + "; ".join(found) + ". Install apache-beam==2.77.0 or update pipeline/runtime/beam_patches.py and runner.py.")
