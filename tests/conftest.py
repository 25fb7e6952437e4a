"""Shared fixtures: a real embedded broker (Tansu), a way to run `finpulse stream` as a process, and
the one place that knows where the real data sets are (`real_data`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import FINPULSE, StreamProcess, lake_rows, posts, send, wait_until  # noqa: F401

from finpulse.infra.broker import EmbeddedBroker, free_port, wait_for_port

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
        from support.realdata import real_fixture  # only tests that use real data import the builder

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












@pytest.fixture(scope="session")
def enriched_lake(tmp_path_factory) -> Path:
    """A lake made the real way: 1,500 generated posts over two days with a negative event for BA,
    backfilled through the models, then the alert rules run over it."""
    import dataclasses
    from datetime import datetime, timedelta, timezone

    from finpulse.pipeline.alerts.evaluate import run_alerts
    from finpulse.pipeline.devtools.generator import Event, generate_posts
    from finpulse.pipeline.jobs.backfill import run_backfill
    from finpulse.pipeline.runtime.settings import AlertSettings, DetectorConfig

    root = tmp_path_factory.mktemp("enriched-lake")
    start = datetime(2026, 11, 2, tzinfo=timezone.utc)
    event = Event("BA", start + timedelta(hours=40, minutes=5), posts=50, minutes=30)
    archive = root / "archive.jsonl"
    archive.write_text("".join(json.dumps(p) + "\n" for p in generate_posts(1500, seed=33, start=start, span_hours=48, events=(event,))))
    lake = root / "lake"
    run_backfill(str(archive), str(lake), progress=False)
    run_alerts(str(lake), AlertSettings(detector=dataclasses.replace(DetectorConfig(), min_history_posts=10)))
    return lake


CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server process; yields a function that makes a fresh lake URL in its bucket."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)  # for this process and the finpulse processes it starts
    try:
        wait_for_port(port)
        from pyarrow import fs

        options = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        fs.FileSystem.from_uri(f"s3://finpulse?{options}&allow_bucket_creation=true")[0].create_dir("finpulse")
        names = iter(range(1000))
        yield lambda: f"s3://finpulse/lake{next(names)}?{options}"
    finally:
        proc.terminate()
        proc.wait(10)
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
