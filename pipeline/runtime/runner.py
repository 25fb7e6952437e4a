"""The local runner: Beam's FnApiRunner, with multi-worker mode fixed for splittable DoFns.

With `--direct_num_workers=N` (N > 1) FnApiRunner hands each fused stage to a
`ParallelBundleManager`, which partitions the bundle's input over N workers and merges their
responses, but keeps only the metrics and the error: each worker's *residual roots* (the
remainders our sources hand back with `tracker.defer_remainder()`) are dropped. Every source
then stops after its first chunk or poll, silently (apache/beam#8872 skipped the checkpoint
tests for multi-worker mode). `FinpulseRunner` keeps them, so the deferred restrictions are
scheduled again, on any worker, like on Flink or Dataflow. Nothing else changes.
"""

from __future__ import annotations

import itertools

from apache_beam.metrics import monitoring_infos
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.portability.fn_api_runner.fn_runner import BundleManager, ParallelBundleManager
from apache_beam.utils import thread_pool_executor

from finpulse.pipeline.runtime.beam_internals import check_beam_internals

check_beam_internals()  # what follows subclasses and re-implements private Beam code: fail loudly if it moved


def merge_responses(responses: list[beam_fn_api_pb2.InstructionResponse]) -> beam_fn_api_pb2.InstructionResponse:
    """One ProcessBundle response for the runner: metrics consolidated, residuals and errors kept."""
    return beam_fn_api_pb2.InstructionResponse(
        process_bundle=beam_fn_api_pb2.ProcessBundleResponse(
            monitoring_infos=monitoring_infos.consolidate(
                itertools.chain.from_iterable(r.process_bundle.monitoring_infos for r in responses)),
            residual_roots=[root for r in responses for root in r.process_bundle.residual_roots]),
        error="\n".join(r.error for r in responses if r.error))


class CheckpointingParallelBundleManager(ParallelBundleManager):
    """ParallelBundleManager that also returns the workers' SDF checkpoints (residual roots)."""

    def process_bundle(self, inputs, expected_outputs, fired_timers, expected_output_timers, dry_run=False):
        parts: list[dict] = [{} for _ in range(self._num_workers)]
        for name, buffer in inputs.items():
            for ix, part in enumerate(buffer.partition(self._num_workers)):
                parts[ix][name] = part
        timers = [fired_timers] + [{}] * (self._num_workers - 1)  # timers run on the first worker, as upstream

        def run(ix: int):
            manager = BundleManager(self.bundle_context_manager, self._progress_frequency,
                                    cache_token_generator=self._cache_token_generator)
            return manager.process_bundle(parts[ix], expected_outputs, timers[ix], expected_output_timers, dry_run)

        with thread_pool_executor.shared_unbounded_instance() as executor:
            results = list(executor.map(run, range(self._num_workers)))
        return merge_responses([r for r, _ in results]), [s for _, splits in results for s in splits]


class FinpulseRunner(FnApiRunner):
    """FnApiRunner whose multi-worker mode (--direct_num_workers > 1) keeps SDF checkpoints."""

    def _get_bundle_manager(self, bundle_context_manager):
        manager = super()._get_bundle_manager(bundle_context_manager)
        if type(manager) is ParallelBundleManager:
            return CheckpointingParallelBundleManager(bundle_context_manager, self._progress_frequency,
                                                      cache_token_generator=manager._cache_token_generator)
        return manager
