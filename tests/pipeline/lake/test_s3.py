"""An s3:// lake against a real S3 API server (moto in server mode, its own process on a free port).

S3 has no rename: the commit point is one PUT of the progress object, staged objects are copied
to their final keys and deleted, and that publish is rolled forward idempotently after a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from click.testing import CliRunner
from support.archives import write_archives
from support.lakefixtures import check_crash_between_the_two_table_commits, dead_letter_rows
from support.processes import FINPULSE, posts, send

from finpulse.pipeline.cli.main import main
from finpulse.pipeline.jobs.backfill import run_backfill
from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.commit import Lake
from finpulse.pipeline.lake.query import run_query
from finpulse.pipeline.lake.storage import ObjectStorage
from finpulse.schemas.errors import LakeLocked


def count(url: str) -> dict:
    return run_query(url, "select count(*) n, count(distinct kafka_offset) d from deadletter").to_pylist()[0]


def test_commit_and_replay_on_s3(s3):
    url = s3()
    lake = Lake(url)
    assert lake.commit("kafka.t.0", 0, 3, dead_letter_rows("kafka.t.0", [0, 1, 2])) == 3
    assert lake.commit("kafka.t.0", 1, 5, dead_letter_rows("kafka.t.0", [1, 2, 3, 4])) == 2
    assert lake.commit("kafka.t.0", 0, 5, dead_letter_rows("kafka.t.0", range(5))) == 0
    assert count(url) == {"n": 5, "d": 5} and Lake(url).all_committed(["kafka.t.0"]) == {"kafka.t.0": 5}
    assert lake.storage.list("deadletter/_delta_log", ".json") and not lake.storage.list("_progress")


def test_the_s3_server_enforces_put_if_absent_and_racing_writers_lose_nothing(s3):
    """delta-rs commits on S3 by writing the next log entry with `If-None-Match: *`; this moto
    server refuses a second such PUT (412), so two writers racing for a version cannot both win:
    the loser re-tries on the next version and every row is kept."""
    import threading

    import boto3
    from botocore.exceptions import ClientError

    url = s3()
    endpoint = "http://" + url.split("endpoint_override=")[1].split("&")[0]
    client = boto3.client("s3", endpoint_url=endpoint)
    client.put_object(Bucket="finpulse", Key="probe", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        client.put_object(Bucket="finpulse", Key="probe", Body=b"2", IfNoneMatch="*")

    def writer(source: str) -> None:
        lake = Lake(url)
        for i in range(0, 24, 3):
            lake.commit_bundle({source: i + 3}, dead_letter_rows(source, range(i, i + 3)))

    threads = [threading.Thread(target=writer, args=(s,)) for s in ("kafka.t.0", "file.0abc")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert count(url)["n"] == 48
    assert Lake(url).all_committed(["kafka.t.0", "file.0abc"]) == {"kafka.t.0": 24, "file.0abc": 24}


def test_crash_between_the_two_table_commits_resumes_without_duplicates(s3, monkeypatch):
    check_crash_between_the_two_table_commits(s3(), monkeypatch)


def test_crash_before_the_commit_leaves_nothing_visible(s3, monkeypatch):
    url = s3()

    def crash(*args, **kwargs):
        raise SystemExit("killed before the log entry PUT")

    monkeypatch.setattr("deltalake.write_deltalake", crash)
    with pytest.raises(SystemExit):
        Lake(url).commit("kafka.t.0", 0, 2, dead_letter_rows("kafka.t.0", [0, 1]))
    monkeypatch.undo()
    assert count(url)["n"] == 0 and Lake(url).committed("kafka.t.0") == 0


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
    compacted = first.pop("compacted")
    assert first == {"files": 3, "rows": 151, "processed": 151, "skipped_already_done": 0}
    # a commit per 40-row chunk, compacted when the backfill ends: one file per table
    assert compacted["enriched"]["files_before"] > 1 and compacted["enriched"]["files_after"] == 1
    assert len(tables.snapshot(url, "enriched").files) == 1
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
    series = run_query(stream_url, "select sum(posts) v from sentiment_series('1 day', 'all')").to_pylist()[0]
    assert series == {"v": 150}


@pytest.mark.slow
def test_alerts_query_and_dashboard_on_an_s3_lake(s3):
    """`finpulse alerts --lake s3://...` records into the lake's alerts table (not a local folder),
    once across two runs; the dashboard store and `query --as-of` read the same lake."""
    from finpulse.dashboard.store import LakeStore
    from finpulse.pipeline.devtools.chaos import alert_feed

    url = s3()
    lake = Lake(url)
    for rows in alert_feed(44, 2):
        lake.commit_bundle({"chaos": rows[-1].position + 1}, rows)
    runs = [subprocess.run(FINPULSE + ["alerts", "--lake", url], capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-2000:]
    first, second = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert len(first) == 2 and second == []
    recorded = run_query(url, "select count(*) n, count(distinct alert_id) d from alerts").to_pylist()[0]
    assert recorded == {"n": 2, "d": 2}
    assert not os.path.exists("s3:")  # nothing written to a local folder named after the URL
    store = LakeStore(url, min_refresh_s=0)
    store.refresh()
    status = store.status()
    posts = run_query(url, "select count(distinct id) n from enriched").to_pylist()[0]["n"]
    assert status.exists and (status.posts, status.alerts) == (posts, 2) and posts > 0
    out = CliRunner().invoke(main, ["query", "--lake", url, "--as-of", "alerts@0", "--format", "json",
                                    "select count(*) n from alerts"])
    assert out.exit_code == 0 and json.loads(out.stdout) == {"n": 2}, out.output
    check = CliRunner().invoke(main, ["lake-check", "--lake", url])
    assert check.exit_code == 0 and json.loads(check.stdout)["bad_files"] == [], check.output
