"""Batch jobs on a Dask cluster through Beam's DaskRunner (apache_beam.runners.dask).

What the DaskRunner of apache-beam 2.77 does, read from its source: it turns Create, ParDo,
GroupByKey and Flatten into dask.bag operations and runs every other transform as an identity;
each ParDo runs once per bag partition as one task (setup, start_bundle, process each element,
finish_bundle, teardown). So our batch stages are shaped to need nothing else: the archive is
read by a plain DoFn over chunks (sources/chunks.py), with no splittable DoFn, side input or
state, and the same pipeline runs on FnApiRunner.

One defect is fixed here: its `apply_dofn_to_bundle` takes the partition's outputs *before*
calling finish_bundle, so whatever a DoFn emits from finish_bundle is dropped. Beam's own
BatchElements (inside RunInference) emits a batch only when the next element would overflow it,
so a partition's last batch comes from finish_bundle; with one chunk per partition that is the
whole chunk, and without the fix not one row reached the lake (tests/pipeline/jobs/test_dask_batch.py: 0 of
120). The replacement collects after finish_bundle. It is installed in this process before the graph is built; the
graph's tasks refer to it by module path, so Dask workers import it from the finpulse package
they must have anyway.

Teardown runs after every task, so a model kept on the DoFn would be loaded per task: the model
handler keeps loaded models in a per-process cache (enrich/handler.py), one load per worker.
"""

from __future__ import annotations

import logging
from typing import Any

from finpulse.pipeline.runtime.beam_internals import Internal, check_beam_internals

log = logging.getLogger(__name__)

RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
EVALUATOR = "apache_beam.runners.dask.transform_evaluator"
INTERNALS = (
    Internal(EVALUATOR, "apply_dofn_to_bundle",
             parameters=("items", "do_fn_invoker_args", "do_fn_invoker_kwargs", "tagged_receivers"),
             uses=("invoke_finish_bundle", "tagged_receivers.values"),
             why="dask_runner: replaced by a version that keeps finish_bundle's outputs"),
    Internal(EVALUATOR, "ParDo.apply", uses=("apply_dofn_to_bundle",),
             why="dask_runner: looks the bundle function up by its module-level name"),
)


def apply_dofn_to_bundle(items, do_fn_invoker_args, do_fn_invoker_kwargs, tagged_receivers) -> list[Any]:
    """One bag partition through a DoFn, as Beam's version, but with finish_bundle's outputs kept."""
    from apache_beam.runners.common import DoFnInvoker

    invoker = DoFnInvoker.create_invoker(*do_fn_invoker_args, **do_fn_invoker_kwargs)
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(item)
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    results = [v.value for v in tagged_receivers.values]
    tagged_receivers.values.clear()  # the receivers object is per task; never hand a partition's outputs twice
    return results


def install() -> None:
    """Make the DaskRunner keep finish_bundle's outputs (idempotent)."""
    from apache_beam.runners.dask import transform_evaluator

    if transform_evaluator.apply_dofn_to_bundle is apply_dofn_to_bundle:
        return
    check_beam_internals(INTERNALS)
    transform_evaluator.apply_dofn_to_bundle = apply_dofn_to_bundle


def dask_args(address: str, partitions: int | None = None) -> list[str]:
    """Beam options running a pipeline on the Dask scheduler at `address` (tcp://host:port), with
    `partitions` bag partitions (one task per partition per stage chain): one per chunk lets the
    scheduler balance chunks over workers and re-run only a lost worker's chunks."""
    args = [f"--runner={RUNNER}", f"--dask_client_address={address}"]
    if partitions:
        args.append(f"--dask_npartitions={partitions}")
    return args


def run(pipeline) -> None:
    """Run a built pipeline to the end; on Dask also close the client the runner opened (it never
    does, and an open client keeps reconnecting to the scheduler after the job)."""
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)
        if client is not None:
            client.close()
