"""The portable path (the Fn API that Flink and Dataflow use) and multi-worker runs give the local lake.

A real local job service (`local_job_service_main`) runs the pipelines submitted by
`finpulse ... -- --runner=PortableRunner`; backfill workers are fresh processes started by a
real worker pool (`worker_pool_main`, the same sidecar a Flink deployment runs), so everything a
worker needs must pickle and import cleanly. fp32 keeps the model outputs independent of how
texts were batched, so lakes can be compared row by row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.archives import write_archives
from support.processes import FINPULSE, posts, send

from finpulse.infra.broker import free_port, wait_for_port
from finpulse.pipeline.jobs.backfill import run_backfill
from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.commit import Lake, source_key
from finpulse.pipeline.lake.query import run_query
from finpulse.pipeline.sources.chunks import chunk_source

pytestmark = pytest.mark.slow

# Everything but ingested_at (wall clock) and model_version: the enrichment a lake holds.
ENRICHED = """select id, kind, source, published_at, text, tickers, sentiment, round(sentiment_score, 4) score,
                     topic, round(topic_score, 4) topic_score, [e.text || '/' || e.type for e in entities] ents,
                     kafka_topic, kafka_partition, kafka_offset
              from enriched order by id"""
DEAD = "select error, stage, source_row, kafka_partition, kafka_offset from deadletter order by source_row, kafka_offset"


def lake_content(lake) -> tuple[list, list]:
    return run_query(lake, ENRICHED).to_pylist(), run_query(lake, DEAD).to_pylist()


def ends(lake: Path, sources: list[str]) -> dict[str, int]:
    """Each source's committed position, from the enriched table's Delta transactions."""
    return Lake(lake).all_committed(sources)


def kafka_sources(topic: str) -> list[str]:
    return [source_key(topic, p) for p in range(3)]


def writers(lake: Path) -> set[str]:
    """The processes (host:pid) that made the ingest commits, from the commits' metadata."""
    return {c["finpulse.writer"] for t in ("enriched", "deadletter") if (dt := tables.open_table(lake, t))
            for c in dt.history() if c.get("finpulse.op") == "ingest"}


def run_cli(*args: str, log: Path, timeout: float = 400) -> int:
    """Run a finpulse command to completion; returns its pid."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(FINPULSE + list(args), stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, log.read_text(errors="replace")[-4000:]
    return proc.pid


def _server(cmd: list[str], port: int, log: Path) -> subprocess.Popen:
    # the worker pool starts workers as `python -c ...`: this interpreter must be the `python` on PATH
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
    wait_for_port(port, timeout=60)
    return proc


@pytest.fixture(scope="module")
def job_service(tmp_path_factory):
    """A local Beam job service and an external worker pool, each in its own process."""
    logs = tmp_path_factory.mktemp("portable")
    job_port, pool_port = free_port(), free_port()
    job = _server([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port", str(job_port)],
                  job_port, logs / "job_service.log")
    pool = _server([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={pool_port}"],
                   pool_port, logs / "worker_pool.log")
    yield {"job": f"localhost:{job_port}", "pool": f"localhost:{pool_port}"}
    for proc in (pool, job):
        proc.terminate()
        proc.wait(10)


def test_backfill_through_the_job_service_in_fresh_worker_processes_matches_the_local_lake(job_service, tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    write_archives(archives)
    pattern = str(archives / "*.*")
    local = run_backfill(pattern, str(tmp_path / "local"), chunk=40, precision="fp32", progress=False)
    assert local["processed"] == 151
    portable_lake = tmp_path / "portable"
    submitter = run_cli("backfill", "--input", pattern, "--lake", str(portable_lake), "--chunk", "40", "--precision", "fp32", "--",
            "--runner=PortableRunner", f"--job_endpoint={job_service['job']}",
            "--environment_type=EXTERNAL", f"--environment_config={job_service['pool']}", log=tmp_path / "portable.log")
    enriched, dead = lake_content(portable_lake)
    assert len(enriched) == 150 and len(dead) == 1
    assert (enriched, dead) == lake_content(tmp_path / "local")
    # the rows were committed by worker processes, not by the process that submitted the job
    pids = {int(w.rsplit(":", 1)[1]) for w in writers(portable_lake)}
    assert pids and submitter not in pids


def test_bounded_stream_through_the_job_service_matches_the_local_stream(broker, job_service, tmp_path):
    send(broker.bootstrap, "pt-news", posts(240, "pt", seed=21))
    common = ["stream", "--bootstrap", broker.bootstrap, "--topics", "pt-news", "--idle-exit", "4", "--precision", "fp32"]
    run_cli(*common, "--lake", str(tmp_path / "local"), log=tmp_path / "local.log")
    run_cli(*common, "--lake", str(tmp_path / "portable"), "--", "--runner=PortableRunner",
            f"--job_endpoint={job_service['job']}", "--environment_type=LOOPBACK", log=tmp_path / "portable.log")
    enriched, dead = lake_content(tmp_path / "portable")
    assert len(enriched) == 240 and len({r["id"] for r in enriched}) == 240 and not dead
    assert {r["kafka_partition"] for r in enriched} == {0, 1, 2}
    assert (enriched, dead) == lake_content(tmp_path / "local")
    assert ends(tmp_path / "portable", kafka_sources("pt-news")) == ends(tmp_path / "local", kafka_sources("pt-news"))
    assert sum(ends(tmp_path / "local", kafka_sources("pt-news")).values()) == 240


def test_two_worker_processes_split_partitions_and_files_exactly_once(broker, tmp_path):
    """`--workers 2` (Beam's --direct_num_workers=2 multi_processing): restrictions go to both worker
    processes; every record lands once; on the CPU each worker loads its own model copy."""
    send(broker.bootstrap, "mp-news", posts(300, "mp", seed=22))
    lake = tmp_path / "stream"
    run_cli("stream", "--bootstrap", broker.bootstrap, "--topics", "mp-news", "--lake", str(lake), "--idle-exit", "4",
            "--workers", "2", log=tmp_path / "stream.log")
    stats = run_query(lake, "select count(*) n, count(distinct id) d, count(distinct kafka_partition) p from enriched")
    assert stats.to_pylist()[0] == {"n": 300, "d": 300, "p": 3}
    assert sum(ends(lake, kafka_sources("mp-news")).values()) == 300
    assert len(model_copies(tmp_path / "stream.log")) == 2

    archives = tmp_path / "archives"
    archives.mkdir()
    for k in range(3):  # equal files advance in lock step, so the last chunks run on both workers at once
        (archives / f"f{k}.jsonl").write_text("".join(p.decode() + "\n" for p in posts(60, f"f{k}", seed=30 + k)))
    backfill_lake = tmp_path / "backfill"
    run_cli("backfill", "--input", str(archives / "*.jsonl"), "--lake", str(backfill_lake), "--chunk", "20",
            "--workers", "2", log=tmp_path / "backfill.log")
    stats = run_query(backfill_lake, "select count(*) n, count(distinct id) d from enriched").to_pylist()[0]
    assert stats == {"n": 180, "d": 180}
    # each chunk of 20 rows is its own source (sources/chunks.py): every one committed to its end
    chunks = [chunk_source(str(p.resolve()), s) for p in archives.glob("*.jsonl") for s in (0, 20, 40)]
    state = ends(backfill_lake, chunks)
    assert sorted(state.values()) == [20] * 3 + [40] * 3 + [60] * 3
    assert len(writers(backfill_lake)) == 2, writers(backfill_lake)  # two worker processes committed


def model_copies(log: Path) -> set[str]:
    """The processes that loaded the models, from the handler's `models loaded in process N` lines."""
    marker = "models loaded in process "
    return {line.split(marker)[1].split()[0] for line in log.read_text(errors="replace").splitlines() if marker in line}


def test_two_worker_processes_can_share_one_model(broker, tmp_path):
    """`--workers 2 --shared-model` (Beam's shared-model path, the CUDA default) run on the CPU: the
    two worker processes send their batches to one model copy, and every record still lands once.
    (`--model-per-process`, the CPU default, loads one copy in each: the test above.)"""
    send(broker.bootstrap, "sm-news", posts(200, "sm", seed=23))
    lake, log = tmp_path / "stream", tmp_path / "stream.log"
    run_cli("stream", "--bootstrap", broker.bootstrap, "--topics", "sm-news", "--lake", str(lake), "--idle-exit", "4",
            "--workers", "2", "--shared-model", "--precision", "fp32", log=log)
    stats = run_query(lake, "select count(*) n, count(distinct id) d, count(distinct kafka_partition) p from enriched")
    assert stats.to_pylist()[0] == {"n": 200, "d": 200, "p": 3}
    assert sum(ends(lake, kafka_sources("sm-news")).values()) == 200
    assert len(model_copies(log)) == 1, log.read_text(errors="replace")[-3000:]
