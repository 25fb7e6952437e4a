"""`finpulse bench --scale`: rows/s of the same backlog with 1, 2 and 3 stream processes sharing a
consumer group, and with 1 and 3 Dask workers backfilling it, in one run.

Each figure is steady throughput: streams from the first commit to the last row (process start and
model loading excluded), Dask from the job's start on a cluster already warmed by a small job (its
workers have loaded the models). On a machine with fewer cores than processes the processes share
the cores, so the figures measure the overhead of each added process (its own model copy, polling,
commits, the group protocol), not a speed-up; the speed-up needs a core or a host per process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from finpulse.models.engine.inference import cpu_features

log = logging.getLogger(__name__)

PARTITIONS = 6
NOTE = ("processes share this machine's cores: with fewer cores than processes, the figures show the "
        "cost of each added process, not a speed-up (docs/DEPLOY.md, docs/SCALING.md)")


def _rows(lake: Path) -> int:
    from finpulse.pipeline.lake.query import run_query

    try:
        return int(run_query(lake, "select count(*) n from enriched").to_pylist()[0]["n"])
    except Exception:  # noqa: BLE001 - the table does not exist before the first commit
        return 0


def _backlog(n: int, seed: int = 5) -> list[bytes]:
    from finpulse.pipeline.devtools.generator import generate_posts

    return [json.dumps({**p, "id": f"scale-{i}"}).encode() for i, p in enumerate(generate_posts(n, seed=seed))]


def stream_rows_per_s(bootstrap: str, backlog: list[bytes], processes: int, workdir: Path,
                      timeout: float = 900.0, join_group: bool = True) -> float:
    """`processes` stream processes in one group on a 6-partition topic holding the backlog
    (`join_group=False`: one lone stream, no group membership, the baseline of the group's cost)."""
    from finpulse.infra.broker import create_topics
    from finpulse.pipeline.devtools.produce import publish

    topic = f"scale-{processes}" + ("" if join_group else "-solo")
    lake = workdir / f"stream-{topic}"
    create_topics(bootstrap, {topic: PARTITIONS})
    publish({"bootstrap_servers": [bootstrap]}, topic, backlog, partition_of=lambda i: i % PARTITIONS)
    cmd = [sys.executable, "-m", "finpulse.pipeline.cli", "stream", "--bootstrap", bootstrap, "--topics", topic,
           "--lake", str(lake), *(["--join-group", "--group", topic] if join_group else [])]
    logs = [open(workdir / f"{topic}-{i}.log", "wb") for i in range(processes)]  # noqa: SIM115 - closed below
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh) for fh in logs]
    try:
        first = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = _rows(lake)
            if done and first is None:
                first = (time.monotonic(), done)
            if done >= len(backlog):
                assert first is not None
                elapsed = time.monotonic() - first[0]
                return round((done - first[1]) / elapsed, 1) if elapsed > 0 else float("nan")
            time.sleep(0.25)
        raise TimeoutError(f"{processes} stream processes did not drain {len(backlog)} records in {timeout:.0f}s")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        for fh in logs:
            fh.close()


def dask_rows_per_s(backlog: list[bytes], workers: int, workdir: Path, chunk: int) -> float:
    """A LocalCluster of `workers` worker processes (one thread each) backfilling the backlog."""
    from distributed import LocalCluster

    from finpulse.pipeline.jobs.backfill import run_backfill

    folder = workdir / f"dask-{workers}"
    folder.mkdir()
    (folder / "warm.jsonl").write_bytes(b"\n".join(backlog[: 4 * workers]) + b"\n")
    per_file = -(-len(backlog) // 4)
    for k in range(4):
        (folder / f"backlog-{k}.jsonl").write_bytes(b"\n".join(backlog[k * per_file:(k + 1) * per_file]) + b"\n")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        # a small job first: every worker imports Beam and loads the models before the clock starts
        run_backfill(str(folder / "warm.jsonl"), str(folder / "warm-lake"), chunk=1, progress=False,
                     dask_address=cluster.scheduler_address)
        began = time.monotonic()
        out = run_backfill(str(folder / "backlog-*.jsonl"), str(folder / "lake"), chunk=chunk, progress=False,
                           dask_address=cluster.scheduler_address)
        elapsed = time.monotonic() - began
    return round(out["processed"] / elapsed, 1)


def run(n: int = 1000, chunk: int = 100) -> dict:
    from finpulse.infra.broker import EmbeddedBroker

    backlog = _backlog(n)
    with tempfile.TemporaryDirectory(prefix="finpulse-bench-scale-") as tmp:
        workdir = Path(tmp)
        broker = EmbeddedBroker(log_file=workdir / "broker.log").start()
        try:
            streams = {"1 (no group)": stream_rows_per_s(broker.bootstrap, backlog, 1, workdir, join_group=False)}
            streams |= {str(k): stream_rows_per_s(broker.bootstrap, backlog, k, workdir) for k in (1, 2, 3)}
        finally:
            broker.stop()
        dask = {str(k): dask_rows_per_s(backlog, k, workdir, chunk) for k in (1, 3)}
    return {"records": n, "cores": os.cpu_count(), "cpu_features": cpu_features(),
            "stream_processes_rows_per_s": streams, "dask_workers_rows_per_s": dask, "note": NOTE}
