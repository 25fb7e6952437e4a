"""The lake's commit protocol on a real file system: atomic, resumable, never duplicating."""

from datetime import datetime, timezone

import pytest

from finpulse.schemas.errors import LakeLocked

from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.query import run_query

NOW = datetime(2026, 11, 2, tzinfo=timezone.utc)


def dl_rows(source, positions):
    return [Row("deadletter", {"raw": b"x", "raw_size": 1, "error": "e", "stage": "parse", "ingested_at": NOW,
                               "kafka_offset": p}, source, p, "2026-11-02") for p in positions]


def count(lake):
    return run_query(lake, "select count(*) n, count(distinct kafka_offset) d from deadletter").to_pylist()[0]


def test_commit_makes_rows_visible_and_records_progress(tmp_path):
    lake = Lake(tmp_path)
    assert lake.commit("kafka.t.0", 0, 3, dl_rows("kafka.t.0", [0, 1, 2])) == 3
    assert lake.committed("kafka.t.0") == 3
    assert count(tmp_path) == {"n": 3, "d": 3}
    assert list((tmp_path / "deadletter" / "date=2026-11-02").glob("*.parquet"))


def test_replayed_range_is_not_written_twice(tmp_path):
    lake = Lake(tmp_path)
    lake.commit("kafka.t.0", 0, 3, dl_rows("kafka.t.0", [0, 1, 2]))
    assert lake.commit("kafka.t.0", 0, 3, dl_rows("kafka.t.0", [0, 1, 2])) == 0
    assert lake.commit("kafka.t.0", 1, 5, dl_rows("kafka.t.0", [1, 2, 3, 4])) == 2  # only 3 and 4 are new
    assert count(tmp_path) == {"n": 5, "d": 5}


def test_crash_after_commit_point_is_rolled_forward(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    original = Lake._write_progress

    def crash_after_progress(self, source, state):
        original(self, source, state)
        raise SystemExit("killed between commit point and rename")

    monkeypatch.setattr(Lake, "_write_progress", crash_after_progress)
    with pytest.raises(SystemExit):
        lake.commit("kafka.t.0", 0, 2, dl_rows("kafka.t.0", [0, 1]))
    monkeypatch.undo()
    assert count(tmp_path)["n"] == 0  # not yet visible: still in staging
    assert Lake(tmp_path).recover() == 1
    assert count(tmp_path) == {"n": 2, "d": 2}
    assert Lake(tmp_path).committed("kafka.t.0") == 2


def test_crash_before_commit_point_leaves_nothing_visible(tmp_path, monkeypatch):
    lake = Lake(tmp_path)

    def crash(self, source, state):
        raise SystemExit("killed before the commit point")

    monkeypatch.setattr(Lake, "_write_progress", crash)
    with pytest.raises(SystemExit):
        lake.commit("kafka.t.0", 0, 2, dl_rows("kafka.t.0", [0, 1]))
    monkeypatch.undo()
    assert Lake(tmp_path).recover() == 0
    assert not (tmp_path / "_staging").exists()
    assert Lake(tmp_path).committed("kafka.t.0") == 0 and count(tmp_path)["n"] == 0


def test_a_second_writer_of_the_same_role_is_refused(tmp_path):
    first = Lake(tmp_path).lock("stream")
    with pytest.raises(LakeLocked, match="another finpulse stream is already writing"):
        Lake(tmp_path).lock("stream")
    Lake(tmp_path).lock("backfill").close()  # other roles are independent
    first.close()
    Lake(tmp_path).lock("stream").close()  # released with the handle


def test_a_stream_starting_while_a_backfill_commits_leaves_the_backfill_alone(tmp_path, monkeypatch):
    """Stream and backfill may share a lake: the stream's start-up recovery runs while the backfill
    is between staging its files and its commit point, and must not delete those files."""
    real_write = Lake._write_progress

    def stream_starts_now(self, source, state):
        Lake(tmp_path).recover("kafka.")  # what `finpulse stream` does at start-up
        real_write(self, source, state)

    monkeypatch.setattr(Lake, "_write_progress", stream_starts_now)
    Lake(tmp_path).commit("file.0123abcd", 0, 3, dl_rows("file.0123abcd", [0, 1, 2]))
    monkeypatch.undo()
    assert count(tmp_path)["n"] == 3
    # and a backfill's recovery leaves a stream's uncommitted staging alone, but clears its own
    staged = tmp_path / "_staging" / "kafka.t.0" / "x" / "deadletter-2026-03-02-a.parquet"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"")
    mine = tmp_path / "_staging" / "file.0123abcd" / "y" / "deadletter-2026-03-02-b.parquet"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"")
    Lake(tmp_path).recover("file.")
    assert staged.exists() and not mine.exists()
