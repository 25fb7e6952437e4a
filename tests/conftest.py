"""Shared fixtures: a real embedded broker (Tansu) and a way to run `finpulse stream` as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finpulse.infra.broker import EmbeddedBroker, create_topics
from finpulse.pipeline.devtools.produce import publish
from finpulse.pipeline.lake.query import run_query

FINPULSE = [sys.executable, "-m", "finpulse.pipeline.cli"]


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    b = EmbeddedBroker(log_file=tmp_path_factory.mktemp("broker") / "broker.log").start()
    yield b
    b.stop()


def send(bootstrap: str, topic: str, messages: list[bytes], partitions: int = 3) -> None:
    """Publish messages round-robin over the topic's partitions (created if missing)."""
    create_topics(bootstrap, {topic: partitions})
    publish({"bootstrap_servers": [bootstrap]}, topic, messages, partition_of=lambda i: i % partitions)


def posts(n: int, prefix: str, seed: int = 1) -> list[bytes]:
    from finpulse.pipeline.devtools.generator import generate_posts

    out = []
    for i, p in enumerate(generate_posts(n, seed=seed)):
        p["id"] = f"{prefix}-{i}"
        out.append(json.dumps(p).encode())
    return out


class StreamProcess:
    def __init__(self, bootstrap: str, topics: list[str], lake: Path, *extra: str, log: Path) -> None:
        cmd = FINPULSE + ["stream", "--bootstrap", bootstrap, "--topics", ",".join(topics), "--lake", str(lake), "-v", *extra]
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"stream did not finish in {timeout}s; log:\n{self.output()[-3000:]}") from None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def lake_rows(lake: Path, view: str = "enriched") -> int:
    return run_query(lake, f"select count(*) n from {view}").to_pylist()[0]["n"]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5, detail=None) -> None:
    """Poll `predicate` until it holds; on timeout fail with `detail()` (e.g. a process's log tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f"\n{detail()}" if detail else ""))


@pytest.fixture(scope="session")
def enriched_lake(tmp_path_factory) -> Path:
    """A lake made the real way: 1,500 generated posts over two days with a negative event for BA,
    backfilled through the models, then the alert rules run over it."""
    import dataclasses
    from datetime import datetime, timedelta, timezone

    from finpulse.pipeline.alerts.detector import DetectorConfig
    from finpulse.pipeline.alerts.evaluate import AlertSettings, run_alerts
    from finpulse.pipeline.devtools.generator import Event, generate_posts
    from finpulse.pipeline.jobs.backfill import run_backfill

    root = tmp_path_factory.mktemp("enriched-lake")
    start = datetime(2026, 11, 2, tzinfo=timezone.utc)
    event = Event("BA", start + timedelta(hours=40, minutes=5), posts=50, minutes=30)
    archive = root / "archive.jsonl"
    archive.write_text("".join(json.dumps(p) + "\n" for p in generate_posts(1500, seed=33, start=start, span_hours=48, events=(event,))))
    lake = root / "lake"
    run_backfill(str(archive), str(lake), progress=False)
    run_alerts(str(lake), AlertSettings(detector=dataclasses.replace(DetectorConfig(), min_history_posts=10)))
    return lake
