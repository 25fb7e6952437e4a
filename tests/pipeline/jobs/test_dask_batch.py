"""Backfill and rescore on a Dask cluster (Beam's DaskRunner): real scheduler and worker processes,
one worker SIGKILLed mid-run; every row lands once, and the rows equal the in-process run's."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
from support.processes import wait_until

from finpulse.pipeline.jobs.backfill import run_backfill
from finpulse.pipeline.jobs.rescore import rescore
from finpulse.pipeline.lake.query import run_query

pytestmark = pytest.mark.slow

COLUMNS = "id, kind, source, published_at, text, tickers, sentiment, topic, model_version"


def real_archives(folder, source_csv, files: int = 3, per_file: int = 40) -> list[str]:
    """`files` JSONL archives of real financial posts (the labelled sentiment set's texts)."""
    with open(source_csv, newline="", encoding="utf-8") as fh:
        texts = [r["text"] for r, _ in zip(csv.DictReader(fh), range(files * per_file), strict=False)]
    paths = []
    for k in range(files):
        path = folder / f"archive-{k}.jsonl"
        path.write_text("".join(
            json.dumps({"id": f"a{k}-{i}", "text": t, "source": "stocktwits", "kind": "social",
                        "published_at": f"2024-03-0{k + 1}T{i % 24:02d}:{i % 60:02d}:00Z"}) + "\n"
            for i, t in enumerate(texts[k * per_file:(k + 1) * per_file])))
        paths.append(str(path))
    return paths


def rows(lake) -> list[dict]:
    return run_query(lake, f"select {COLUMNS}, sentiment_score, topic_score, entities from enriched order by id"
                     ).to_pylist()


def committed(lake, where: str = "true") -> int:
    try:
        return run_query(lake, f"select count(*) n from enriched_versions where {where}").to_pylist()[0]["n"]
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return 0


def kill_a_worker_mid_job(client, pids: dict, job: threading.Thread, lake, where: str = "true") -> int:
    """Once a chunk has committed and a worker holds a finished chunk's result, SIGKILL that worker:
    Dask must re-run the chunk (its result is lost with the worker), and re-running it must not
    write its rows again. Returns the rows committed when the kill came."""
    def a_worker_holds_a_finished_chunk() -> bool:
        return committed(lake, where) >= 15 and any(client.has_what().values())

    wait_until(a_worker_holds_a_finished_chunk, 240, "a chunk committed on a worker", interval=0.1)
    victim = next(w for w, keys in client.has_what().items() if keys)
    os.kill(pids[victim], signal.SIGKILL)
    killed_at = committed(lake, where)
    job.join(300)
    assert not job.is_alive()
    return killed_at


def cluster():
    from distributed import LocalCluster

    return LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                        silence_logs=logging.ERROR)


def same_reading(got: list[dict], want: list[dict]) -> None:
    """fp32 on both sides: bf16 scores move with the batch a text is in."""
    for a, b in zip(got, want, strict=True):
        assert {k: a[k] for k in COLUMNS.split(", ")} == {k: b[k] for k in COLUMNS.split(", ")}
        assert a["sentiment_score"] == pytest.approx(b["sentiment_score"], abs=1e-4)
        assert a["topic_score"] == pytest.approx(b["topic_score"], abs=1e-4)
        assert [(e["text"], e["type"], e["start"]) for e in a["entities"]] == \
               [(e["text"], e["type"], e["start"]) for e in b["entities"]]


@pytest.fixture(scope="module")
def archived(tmp_path_factory, real_data) -> Path:
    """Three real archives and their in-process backfill (`local`, chunks of 15), shared by the tests."""
    folder = tmp_path_factory.mktemp("archives")
    real_archives(folder, real_data.path("tfns_sentiment_train.csv"))
    local = run_backfill(str(folder / "archive-*.jsonl"), str(folder / "local"), chunk=15, precision="fp32",
                         progress=False)
    assert local["processed"] == 120
    return folder


def test_a_dask_backfill_survives_a_killed_worker_and_equals_the_in_process_one(tmp_path, archived):
    """Files of 40 rows in chunks of 15: each file's last chunk (10 rows) is a partial model batch,
    which Beam's BatchElements emits from finish_bundle, the output Beam's DaskRunner drops unless
    runtime/dask_runner.py replaces its bundle function."""
    from distributed import Client

    from finpulse.pipeline.enrich import handler

    pattern = str(archived / "archive-*.jsonl")
    lake = tmp_path / "dask"
    with cluster() as dask, Client(dask) as client:
        pids = client.run(os.getpid)
        assert len(set(pids.values())) == 3
        result: dict = {}
        job = threading.Thread(target=lambda: result.update(
            run_backfill(pattern, str(lake), chunk=15, precision="fp32", progress=False,
                         dask_address=dask.scheduler_address)))
        job.start()
        killed_at = kill_a_worker_mid_job(client, pids, job, lake)
        assert killed_at < 120, "the kill came after the last commit: it tested nothing"
        loads = client.run(lambda: handler.LOADS)

    assert result["processed"] == 120
    got = rows(lake)
    assert len(got) == len({r["id"] for r in got}) == 120  # every row once
    # models load once per worker process (the replacement worker loads its own), not once per task:
    # 9 chunks ran on 3 workers
    assert max(loads.values()) == 1, loads
    same_reading(got, rows(archived / "local"))


def second_registry(folder: Path, version: str) -> str:
    """The shipped default models under another version name: what a rescore with new models looks like."""
    models = Path(__file__).resolve().parents[3] / "models"
    reg = json.loads((models / "registry.json").read_text())
    for task in (t for t in reg.values() if isinstance(t, dict)):
        task["artifact"] = str(models / task["artifact"])
        task["version"] = version
    path = folder / "registry-next.json"
    path.write_text(json.dumps(reg))
    return str(path)


def test_a_dask_rescore_survives_a_killed_worker_and_equals_the_in_process_one(tmp_path, archived):
    """The lake's 120 rows rescored in chunks of 15 on 3 worker processes, one SIGKILLed after a
    chunk committed: every id gets exactly one row of the new version, the same as a rescore on
    the local runner of a copy of the same lake, and the old version's rows stay."""
    from distributed import Client

    from finpulse.pipeline.enrich import handler

    base = archived / "local"
    local, lake = tmp_path / "local", tmp_path / "dask"
    shutil.copytree(base, local)
    shutil.copytree(base, lake)
    registry = second_registry(tmp_path, "next")
    assert rescore(local, registry, chunk=15, precision="fp32")["rescored"] == 120

    with cluster() as dask, Client(dask) as client:
        pids = client.run(os.getpid)
        result: dict = {}
        job = threading.Thread(target=lambda: result.update(
            rescore(lake, registry, chunk=15, precision="fp32", dask_address=dask.scheduler_address)))
        job.start()
        killed_at = kill_a_worker_mid_job(client, pids, job, lake, "model_version = 'next'")
        assert killed_at < 120, "the kill came after the last commit: it tested nothing"
        loads = client.run(lambda: handler.LOADS)

    assert result["rescored"] == 120 and result["chunks"] == 8
    versions = run_query(lake, "select model_version, count(*) n, count(distinct id) d from enriched_versions "
                               "group by 1 order by 1").to_pylist()
    old = rows(base)[0]["model_version"]
    assert versions == sorted([{"model_version": "next", "n": 120, "d": 120},
                               {"model_version": old, "n": 120, "d": 120}], key=lambda r: r["model_version"])
    assert max(loads.values()) == 1, loads
    same_reading(rows(lake), rows(local))
    # a finished rescore re-run finds nothing to do
    assert rescore(lake, registry, chunk=15)["rescored"] == 0
