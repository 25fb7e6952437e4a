"""The lake's commit protocol on Delta tables on a real file system: atomic, resumable, never duplicating."""

import threading
from datetime import datetime, timezone

import pyarrow as pa
import pytest
from support.lakefixtures import check_crash_between_the_two_table_commits, dead_letter_rows

from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.query import run_query
from finpulse.schemas.errors import LakeLocked

NOW = datetime(2026, 11, 2, tzinfo=timezone.utc)


def count(lake):
    return run_query(lake, "select count(*) n, count(distinct kafka_offset) d from deadletter").to_pylist()[0]


def test_commit_makes_rows_visible_and_records_progress_in_the_table_log(tmp_path):
    lake = Lake(tmp_path)
    assert lake.commit("kafka.t.0", 0, 3, dead_letter_rows("kafka.t.0", [0, 1, 2])) == 3
    assert lake.committed("kafka.t.0") == 3
    assert count(tmp_path) == {"n": 3, "d": 3}
    assert list((tmp_path / "deadletter").glob("*.parquet"))  # a data file, in no day folder (tables.py)
    assert (tmp_path / "deadletter" / "_delta_log").is_dir() and not (tmp_path / "_progress").exists()
    # the position is a Delta transaction of the resume table, readable by any Delta client
    assert tables.open_table(tmp_path, "enriched").transaction_version("kafka.t.0") == 3


def test_replayed_range_is_not_written_twice(tmp_path):
    lake = Lake(tmp_path)
    lake.commit("kafka.t.0", 0, 3, dead_letter_rows("kafka.t.0", [0, 1, 2]))
    assert lake.commit("kafka.t.0", 0, 3, dead_letter_rows("kafka.t.0", [0, 1, 2])) == 0
    assert lake.commit("kafka.t.0", 1, 5, dead_letter_rows("kafka.t.0", [1, 2, 3, 4])) == 2  # only 3 and 4 are new
    assert count(tmp_path) == {"n": 5, "d": 5}


def test_one_bundle_is_one_commit_per_table_for_all_its_partitions(tmp_path):
    lake = Lake(tmp_path)
    rows = dead_letter_rows("kafka.t.0", [0, 1]) + dead_letter_rows("kafka.t.1", [0, 1, 2])
    assert lake.commit_bundle({"kafka.t.0": 2, "kafka.t.1": 3}, rows) == 5
    assert lake.all_committed(["kafka.t.0", "kafka.t.1", "kafka.t.2"]) == {
        "kafka.t.0": 2,
        "kafka.t.1": 3,
        "kafka.t.2": 0,
    }
    assert tables.open_table(tmp_path, "deadletter").version() == 0  # one commit each
    assert tables.open_table(tmp_path, "enriched").version() == 0


def test_crash_between_the_two_tables_commits_resumes_without_duplicates(tmp_path, monkeypatch):
    """Killed between the deadletter and the enriched commit (see lakefixtures)."""
    check_crash_between_the_two_table_commits(tmp_path, monkeypatch)


def test_a_data_file_torn_before_the_log_entry_is_never_visible(tmp_path, monkeypatch):
    """Killed after writing (part of) a data file and before the commit: the file is in the
    table's folder but not in its log, so no reader sees it and the position did not move."""
    Lake(tmp_path).commit("kafka.t.0", 0, 1, dead_letter_rows("kafka.t.0", [0]))

    def torn(*args, **kwargs):
        stray = tmp_path / "deadletter" / "part-torn.parquet"
        stray.write_bytes(b"PAR1" + b"\0" * 100)
        raise SystemExit("killed mid-write")

    monkeypatch.setattr("deltalake.write_deltalake", torn)
    with pytest.raises(SystemExit):
        Lake(tmp_path).commit("kafka.t.0", 1, 3, dead_letter_rows("kafka.t.0", [1, 2]))
    monkeypatch.undo()
    assert count(tmp_path) == {"n": 1, "d": 1} and Lake(tmp_path).committed("kafka.t.0") == 1
    assert Lake(tmp_path).commit("kafka.t.0", 1, 3, dead_letter_rows("kafka.t.0", [1, 2])) == 2
    assert count(tmp_path) == {"n": 3, "d": 3}


def test_a_second_writer_of_the_same_role_is_refused(tmp_path):
    first = Lake(tmp_path).lock("stream")
    with pytest.raises(LakeLocked, match="another finpulse stream is already writing"):
        Lake(tmp_path).lock("stream")
    Lake(tmp_path).lock("backfill").close()  # other roles are independent
    first.close()
    Lake(tmp_path).lock("stream").close()  # released with the handle


def test_stream_and_backfill_commit_to_the_same_tables_at_once(tmp_path):
    """Two writers (a stream's partitions, a backfill's files) racing on the same Delta tables:
    optimistic concurrency retries the loser; every row lands once and both positions are kept."""

    def writer(prefix: str, source: str) -> None:
        lake = Lake(tmp_path)
        for i in range(0, 60, 3):
            rows = [
                Row(
                    "deadletter",
                    {
                        "raw": f"{prefix}{p}".encode(),
                        "raw_size": 1,
                        "error": "e",
                        "stage": "parse",
                        "ingested_at": NOW,
                        "kafka_offset": p,
                    },
                    source,
                    p,
                    "2026-11-02",
                )
                for p in range(i, i + 3)
            ]
            lake.commit_bundle({source: i + 3}, rows)

    threads = [
        threading.Thread(target=writer, args=("s", "kafka.t.0")),
        threading.Thread(target=writer, args=("b", "file.0abc")),
    ]
    [t.start() for t in threads]
    [t.join() for t in threads]
    r = run_query(tmp_path, "select count(*) n, count(distinct raw) d from deadletter").to_pylist()[0]
    assert r == {"n": 120, "d": 120}
    assert Lake(tmp_path).all_committed(["kafka.t.0", "file.0abc"]) == {"kafka.t.0": 60, "file.0abc": 60}


def test_a_new_nullable_column_evolves_an_old_table_without_a_rewrite(tmp_path):
    """A table written by an older schema (no `novelty` yet) takes rows of a newer one: the column
    is added to the table (schema merge) and old rows read it as null."""
    old = pa.table(
        {
            "raw": [b"x"],
            "raw_size": [1],
            "error": ["e"],
            "stage": ["parse"],
            "ingested_at": pa.array([NOW], pa.timestamp("us", tz="UTC")),
            "date": ["2026-11-02"],
        }
    )
    tables.append(tmp_path, "deadletter", old)
    new = old.append_column("novelty", pa.array([0.5]))
    tables.append(tmp_path, "deadletter", new)
    dt = tables.open_table(tmp_path, "deadletter")
    assert "novelty" in [f.name for f in dt.schema().fields] and len(dt.file_uris()) == 2
    got = sorted(dt.to_pyarrow_table(columns=["novelty"]).column("novelty").to_pylist(), key=lambda v: v is None)
    assert got == [0.5, None]
