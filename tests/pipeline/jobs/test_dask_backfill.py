"""Backfill on a Dask cluster (Beam's DaskRunner): real scheduler and worker processes, one worker
SIGKILLed mid-run; every row lands once, and the rows equal the in-process backfill's."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import threading

import pytest
from support.processes import wait_until

from finpulse.pipeline.jobs.backfill import run_backfill
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


def test_a_dask_backfill_survives_a_killed_worker_and_equals_the_in_process_one(tmp_path, real_data):
    """Files of 40 rows in chunks of 15: each file's last chunk (10 rows) is a partial model batch,
    which Beam's BatchElements emits from finish_bundle, the output Beam's DaskRunner drops unless
    runtime/dask_runner.py replaces its bundle function."""
    from distributed import Client, LocalCluster

    from finpulse.pipeline.enrich import handler

    real_archives(tmp_path, real_data.path("tfns_sentiment_train.csv"))
    pattern = str(tmp_path / "archive-*.jsonl")
    local = run_backfill(pattern, str(tmp_path / "local"), chunk=15, precision="fp32", progress=False)
    assert local["processed"] == 120

    lake = tmp_path / "dask"
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        assert len(set(pids.values())) == 3
        result: dict = {}
        job = threading.Thread(target=lambda: result.update(
            run_backfill(pattern, str(lake), chunk=15, precision="fp32", progress=False,
                         dask_address=cluster.scheduler_address)))
        job.start()

        def committed() -> int:
            try:
                return run_query(lake, "select count(*) n from enriched").to_pylist()[0]["n"]
            except Exception:  # noqa: BLE001 - the table may not exist yet
                return 0

        # kill a worker that holds a finished chunk's result: Dask must re-run that chunk (its
        # result is lost with the worker) and re-running must not write its rows again
        def a_worker_holds_a_finished_chunk() -> bool:
            return committed() >= 15 and any(client.has_what().values())

        wait_until(a_worker_holds_a_finished_chunk, 240, "a chunk committed on a worker", interval=0.1)
        victim = next(w for w, keys in client.has_what().items() if keys)
        os.kill(pids[victim], signal.SIGKILL)
        killed_at = committed()
        job.join(300)
        assert not job.is_alive()
        assert killed_at < 120, "the kill came after the last commit: it tested nothing"
        loads = client.run(lambda: handler.LOADS)

    assert result["processed"] == 120
    got = rows(lake)
    assert len(got) == len({r["id"] for r in got}) == 120  # every row once
    # models load once per worker process (the replacement worker loads its own), not once per task:
    # 9 chunks ran on 3 workers
    assert max(loads.values()) == 1, loads
    want = rows(tmp_path / "local")  # fp32 on both: bf16 scores move with the batch a text is in
    for a, b in zip(got, want, strict=True):
        assert {k: a[k] for k in COLUMNS.split(", ")} == {k: b[k] for k in COLUMNS.split(", ")}
        assert a["sentiment_score"] == pytest.approx(b["sentiment_score"], abs=1e-4)
        assert a["topic_score"] == pytest.approx(b["topic_score"], abs=1e-4)
        assert [(e["text"], e["type"], e["start"]) for e in a["entities"]] == \
               [(e["text"], e["type"], e["start"]) for e in b["entities"]]
