"""A fix for an unbounded memory leak in Beam's FnApiRunner under an endless splittable DoFn.

FnApiRunner.run_stages (apache-beam 2.77, fn_runner.py ~line 468) keeps each stage's metrics as

    monitoring_infos_by_stage[stage] = consolidate(itertools.chain(new_bundle_infos, previous))

where `consolidate` is a generator. Nothing consumes it until the pipeline ends, so every bundle
wraps the previous generator in one more chain: the MonitoringInfos of *every* bundle stay alive.
Our source defers its remainder after each poll, so each poll is a bundle (several a second, for
months): measured 6.5 KB per bundle on a bare SDF loop, about 60 MB a minute in the stream, and a
chain millions deep to unwind at shutdown. Making the consolidation eager keeps one merged
MonitoringInfo per metric: constant memory, same totals.
"""

from __future__ import annotations

import functools

from finpulse.pipeline.runtime.beam_internals import check_beam_internals

_PATCHED = False


def bound_fn_api_runner_metrics() -> None:
    """Make FnApiRunner consolidate each stage's metrics eagerly (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    from apache_beam.metrics import monitoring_infos
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    check_beam_internals()  # a patch of a name Beam no longer has would do nothing, silently

    lazy = monitoring_infos.consolidate

    @functools.wraps(lazy)
    def eager(metrics, key=monitoring_infos.to_key):
        return list(lazy(metrics, key))

    fn_runner.consolidate_monitoring_infos = eager
    _PATCHED = True
