"""Shared fixtures: a real embedded broker (Tansu), a way to run `finpulse stream` as a process, and
the one place that knows where the real data sets are (`real_data`)."""

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

# Every skip for a missing data set starts with this, so the summary can count them and CI can refuse them.
MISSING_DATA = "needs real data:"


def data_dir() -> Path:
    """Where the real data sets are: $FINPULSE_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("FINPULSE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


class RealData:
    """The real (labelled, public) data sets, read where they live, never copied into the repository.

    A test that needs one asks for it here; when it is not there the test is skipped with one reason
    naming the file and FINPULSE_DATA (a clone without ../shared still passes), unless
    FINPULSE_REQUIRE_DATA=1 (CI, which has the data) makes that a failure.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, *names: str) -> Path:
        """Path of data set `names[0]`, after checking that every one of `names` is there."""
        for name in names:
            if not (self.root / name).is_file():
                reason = (f"{MISSING_DATA} {self.root / name} not found; set FINPULSE_DATA to the folder "
                          "that holds the shared data sets (see README.md, 'Data')")
                if os.environ.get("FINPULSE_REQUIRE_DATA") == "1":
                    pytest.fail(reason, pytrace=False)
                pytest.skip(reason)
        return self.root / names[0]

    def fixture(self, name: str) -> Path:
        """Path of the tests' real-text file `name` ("linking_real.jsonl", "headlines_real.jsonl"), built
        from the data sets by tests/fixtures/make_*.py on first use."""
        self.path("sentfin_entity_train.jsonl", "finentity_train.jsonl")
        from realdata import real_fixture  # only tests that use real data import the builder

        return real_fixture(self.root, name)

    def rows(self, name: str) -> list[dict]:
        lines = self.fixture(name).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def real_data() -> RealData:
    return RealData(data_dir())


def pytest_terminal_summary(terminalreporter) -> None:
    """One line at the end: how many tests did not run for want of a data set, and how to give it."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and MISSING_DATA in str(r.longrepr[2])]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} tests skipped for missing real data "
                                    f"(looked in {data_dir()}; set FINPULSE_DATA)", yellow=True)


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

    from finpulse.pipeline.runtime.settings import DetectorConfig
    from finpulse.pipeline.alerts.evaluate import run_alerts
    from finpulse.pipeline.runtime.settings import AlertSettings
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
