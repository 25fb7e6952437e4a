"""An s3:// lake against a real S3 API server (moto in server mode, its own process on a free port).

S3 has no rename: the commit point is one PUT of the progress object, staged objects are copied
to their final keys and deleted, and that publish is rolled forward idempotently after a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from finpulse.schemas.errors import LakeLocked
from click.testing import CliRunner

from conftest import FINPULSE, posts, send
from finpulse.infra.broker import free_port, wait_for_port
from finpulse.pipeline.jobs.backfill import run_backfill
from finpulse.pipeline.cli.main import main
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.query import run_query
from finpulse.pipeline.lake.storage import ObjectStorage
from test_backfill import write_archives

NOW = datetime(2026, 11, 2, tzinfo=timezone.utc)
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


def dl_rows(source: str, positions) -> list[Row]:
    return [Row("deadletter", {"raw": b"x", "raw_size": 1, "error": "e", "stage": "parse", "ingested_at": NOW,
                               "kafka_offset": p}, source, p, "2026-11-02") for p in positions]


def count(url: str) -> dict:
    return run_query(url, "select count(*) n, count(distinct kafka_offset) d from deadletter").to_pylist()[0]


def test_commit_and_replay_on_s3(s3):
    url = s3()
    lake = Lake(url)
    assert count(url) == {"n": 0, "d": 0}
    assert lake.commit("kafka.t.0", 0, 3, dl_rows("kafka.t.0", [0, 1, 2])) == 3
    assert lake.commit("kafka.t.0", 1, 5, dl_rows("kafka.t.0", [1, 2, 3, 4])) == 2
    assert lake.commit("kafka.t.0", 0, 5, dl_rows("kafka.t.0", range(5))) == 0
    assert count(url) == {"n": 5, "d": 5} and Lake(url).all_committed() == {"kafka.t.0": 5}
    assert lake.storage.list("_staging") == []


def test_crash_after_the_commit_point_is_rolled_forward_without_duplicates(s3, monkeypatch):
    url = s3()
    original = Lake._write_progress

    def crash_after_progress(self, source, state):
        original(self, source, state)
        raise SystemExit("killed between the progress PUT and the copies")

    monkeypatch.setattr(Lake, "_write_progress", crash_after_progress)
    with pytest.raises(SystemExit):
        Lake(url).commit("kafka.t.0", 0, 2, dl_rows("kafka.t.0", [0, 1]))
    with pytest.raises(SystemExit):
        Lake(url).commit("kafka.t.1", 0, 2, dl_rows("kafka.t.1", [0, 1]))
    monkeypatch.undo()
    assert count(url)["n"] == 0  # committed but not yet published: invisible
    storage = ObjectStorage(url)
    # a crash between copy and delete: the final object exists and the staged one too
    staged, final = json.loads(storage.read_text("_progress/kafka.t.0.json"))["pending"][0]
    storage.filesystem.copy_file(storage.full_path(staged), storage.full_path(final))
    assert count(url)["n"] == 2
    # the next commit of a source finishes its earlier attempt first (a retried bundle on another worker)
    assert Lake(url).commit("kafka.t.0", 2, 3, dl_rows("kafka.t.0", [2])) == 1
    assert count(url) == {"n": 3, "d": 3}
    # start-up recovery rolls the other source forward and clears staging
    assert Lake(url).recover() == 1
    assert run_query(url, "select count(*) n from deadletter").to_pylist()[0]["n"] == 5
    assert storage.list("_staging") == []


def test_crash_before_the_commit_point_leaves_nothing(s3, monkeypatch):
    url = s3()

    def crash(self, source, state):
        raise SystemExit("killed before the progress PUT")

    monkeypatch.setattr(Lake, "_write_progress", crash)
    with pytest.raises(SystemExit):
        Lake(url).commit("kafka.t.0", 0, 2, dl_rows("kafka.t.0", [0, 1]))
    monkeypatch.undo()
    assert ObjectStorage(url).list("_staging")  # orphaned staged objects
    assert Lake(url).recover() == 0
    assert ObjectStorage(url).list("") == [] and Lake(url).committed("kafka.t.0") == 0


def test_the_writer_lease_refuses_a_second_writer_and_expires(s3):
    url = s3()
    first = Lake(url).lock("stream")
    with pytest.raises(LakeLocked, match="another finpulse stream is already writing"):
        Lake(url).lock("stream")
    Lake(url).lock("backfill").close()  # other roles are independent
    first.close()
    Lake(url).lock("stream").close()  # released on close
    # a lease left by a crashed writer is taken over once it is stale
    ObjectStorage(url).put_atomic(".stream.lease", json.dumps({"owner": "dead:1:x", "renewed": time.time() - 3600}).encode())
    Lake(url).lock("stream").close()


@pytest.mark.slow
def test_backfill_and_stream_into_an_s3_lake(s3, broker, tmp_path):
    url = s3()
    write_archives(tmp_path)
    first = run_backfill(str(tmp_path / "*.*"), url, chunk=40, progress=False)
    assert first == {"files": 3, "rows": 151, "processed": 151, "skipped_already_done": 0}
    assert run_backfill(str(tmp_path / "*.*"), url, chunk=40, progress=False)["processed"] == 0
    out = CliRunner().invoke(main, ["query", "--lake", url, "--format", "json",
                                    "select count(*) n, count(distinct id) d from enriched"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"n": 150, "d": 150}
    # the stream as a process, under the S3 lease, into a second lake
    send(broker.bootstrap, "s3-news", posts(150, "s3", seed=41))
    stream_url = s3()
    proc = subprocess.run(FINPULSE + ["stream", "--bootstrap", broker.bootstrap, "--topics", "s3-news", "--lake", stream_url,
                                      "--idle-exit", "4"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = run_query(stream_url, "select count(*) n, count(distinct id) d, count(distinct kafka_partition) p from enriched")
    assert stats.to_pylist()[0] == {"n": 150, "d": 150, "p": 3}
    assert not ObjectStorage(stream_url).list("", ".lease")  # released at the end
    series = run_query(stream_url, "select sum(volume) v from sentiment_series('1 day', 'all')").to_pylist()[0]
    assert series == {"v": 150}
