"""What the bounded jobs (backfill, rescore) share: the Beam pipeline they run on and a progress bar.

Both cut their work into chunks that commit on their own, and run them on Beam's local runner
or, with a Dask scheduler's address, on Beam's DaskRunner (runtime/dask_runner.py) with one bag
partition per chunk. The driver cannot count rows as they pass on other processes, so the
progress bar polls what the lake holds (one small read a second): the same truth a crashed and
resumed run starts from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import apache_beam as beam

from finpulse.pipeline.jobs.stream import pipeline_options
from finpulse.pipeline.runtime import dask_runner


def batch_pipeline(lake: str, chunks: int, beam_args: list[str] | None = None,
                   dask_address: str | None = None) -> beam.Pipeline:
    """A pipeline on the local runner, or on the Dask cluster at `dask_address` with one partition per chunk."""
    if dask_address:
        dask_runner.install()
        beam_args = dask_runner.dask_args(dask_address, partitions=chunks) + list(beam_args or [])
    options, runner = pipeline_options(beam_args, lake)
    return beam.Pipeline(runner=runner, options=options)


@contextmanager
def lake_progress(desc: str, total: int, count: Callable[[], int], enabled: bool = True) -> Iterator[None]:
    """Show `count()` against `total` every second on stderr while the block runs (nothing if not `enabled`)."""
    if not enabled:
        yield
        return
    done = threading.Event()

    def poll() -> None:
        from tqdm import tqdm

        with tqdm(total=total, unit="rows", desc=desc, mininterval=1) as bar:
            while True:
                finished = done.wait(1.0)
                bar.n = count()
                bar.refresh()
                if finished:
                    return

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
