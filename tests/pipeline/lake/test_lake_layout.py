"""The lake's table layout: tables not partitioned by day, compacted after batch writes, and the
in-place rewrite of a day-partitioned table (lake/relayout.py) with readers running meanwhile."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
from click.testing import CliRunner
from deltalake import CommitProperties, Transaction, write_deltalake

from finpulse.pipeline.cli.main import main
from finpulse.pipeline.devtools.lakebench import T0, synth
from finpulse.pipeline.lake import relayout, tables
from finpulse.pipeline.lake.maintenance import compact_written
from finpulse.pipeline.lake.query import run_query

NEWER = ["story_id", "copies_seen", "novelty"]  # columns the first files of an old table predate


def old_layout_append(lake: Path, data: pa.Table, source: str | None = None, end: int = 0,
                      merge: bool = False) -> None:
    """A commit as the day-partitioned layout made it (a `date=` folder per day)."""
    write_deltalake(tables.table_uri(lake, "enriched"), data, mode="append", partition_by=[tables.PARTITION],
                    schema_mode="merge" if merge else None,
                    commit_properties=CommitProperties(app_transactions=[Transaction(source, end)] if source else None))


def day_partitioned_lake(lake: Path, days: int = 30, per_day: int = 40) -> int:
    """An enriched table of the older layout: a commit per day, each with its source's position;
    the first half written before the NEWER columns existed (schema evolution); rows written."""
    for d in range(days):
        data = synth(per_day, T0 + timedelta(days=d), 86400, seed=d)
        if d < days // 2:
            data = data.drop_columns(NEWER)
        else:
            data = data.set_column(data.schema.get_field_index("novelty"), "novelty", pa.array([0.5] * per_day))
        old_layout_append(lake, data, f"file.day{d}", per_day, merge=d == days // 2)
    tables.open_table(lake, "enriched").alter.set_table_properties({tables.RESCORED_PROPERTY: "true"},
                                                                   raise_if_not_exists=False)
    return days * per_day


def counts(lake: Path) -> dict:
    return run_query(lake, "select count(*) n, count(distinct id) d from enriched_versions").to_pylist()[0]


def live_day_folders(lake: Path) -> list[str]:
    return [f for f in tables.snapshot(lake, "enriched").files if f"{tables.PARTITION}=" in f]


def test_new_tables_are_not_partitioned_and_readers_see_the_record_columns_only(tmp_path):
    data = synth(30, T0, 3 * 86400, seed=1)  # three days of rows
    tables.append(tmp_path, "enriched", data, {"kafka.t.0": 30})
    dt = tables.open_table(tmp_path, "enriched")
    assert tables.partition_columns(dt) == [] and len(dt.file_uris()) == 1  # one file, not one a day
    assert not list((tmp_path / "enriched").glob(f"{tables.PARTITION}=*"))
    got = run_query(tmp_path, "select * from enriched_versions")
    assert got.num_rows == 30 and tables.PARTITION not in got.column_names
    assert dt.transaction_version("kafka.t.0") == 30


def test_a_day_partitioned_table_keeps_taking_appends_in_its_own_layout(tmp_path):
    old_layout_append(tmp_path, synth(10, T0, 3600, seed=1), "kafka.t.0", 10)
    tables.append(tmp_path, "enriched", synth(5, T0 + timedelta(days=1), 3600, seed=2), {"kafka.t.0": 15})
    dt = tables.open_table(tmp_path, "enriched")
    assert tables.partition_columns(dt) == [tables.PARTITION] and len(live_day_folders(tmp_path)) == 2
    assert counts(tmp_path) == {"n": 15, "d": 15} and dt.transaction_version("kafka.t.0") == 15


def test_batch_writes_are_compacted_across_days_not_into_a_file_per_day(tmp_path):
    """A backfill-like write: 20 chunks of rows spanning ~2 years, a commit each; the job's final
    compaction leaves one file (the day layout kept at least one per day: hundreds)."""
    for k in range(20):
        tables.append(tmp_path, "enriched", synth(100, T0 + timedelta(days=36 * k), 36 * 86400, seed=k),
                      {"file.a": (k + 1) * 100})
    assert len(tables.snapshot(tmp_path, "enriched").files) == 20
    result = compact_written(tmp_path, ("enriched",))
    assert result["enriched"]["files_before"] == 20 and result["enriched"]["files_after"] == 1
    assert len(tables.snapshot(tmp_path, "enriched").files) == 1
    assert counts(tmp_path) == {"n": 2000, "d": 2000}
    assert tables.open_table(tmp_path, "enriched").transaction_version("file.a") == 2000


def test_relayout_with_a_concurrent_reader_every_row_once_positions_and_old_rows_kept(tmp_path, monkeypatch):
    """The rewrite is one commit: a reader counting rows in a loop meanwhile never fails and never
    sees a row twice or missing; source positions, the rescored property, and rows written before
    a column existed (null there) all survive."""
    n = day_partitioned_lake(tmp_path)
    before = run_query(tmp_path, "select id, novelty, story_id from enriched_versions order by id")
    # slow the rewrite down (small batches, a pause each) so the reader runs through it
    monkeypatch.setattr(tables, "ROW_GROUP_ROWS", 50)
    slow_rows = relayout._rows

    def rows_slowly(*args):
        reader = slow_rows(*args)

        def paced():
            for batch in reader:
                time.sleep(0.03)
                yield batch
        return pa.RecordBatchReader.from_batches(reader.schema, paced())

    monkeypatch.setattr(relayout, "_rows", rows_slowly)
    reads: list[tuple[float, float, object]] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            t = time.monotonic()
            try:
                got: object = counts(tmp_path)
            except Exception as exc:  # noqa: BLE001 - recorded: the test fails on any
                got = exc
            reads.append((t, time.monotonic(), got))

    thread = threading.Thread(target=reader)
    thread.start()
    while not reads:  # a read of the old layout done
        time.sleep(0.01)
    start = time.monotonic()
    report = relayout.relayout(tmp_path)["enriched"]
    end = time.monotonic()
    while not any(a > end for a, _, _ in reads):  # and one of the new
        time.sleep(0.01)
    stop.set()
    thread.join()
    assert all(got == {"n": n, "d": n} for _, _, got in reads), [g for _, _, g in reads if g != {"n": n, "d": n}]
    assert any(a < end and b > start for a, b, _ in reads), "no read ran during the rewrite"
    assert any(a > end for a, _, _ in reads) and any(b < start for _, b, _ in reads)
    dt = tables.open_table(tmp_path, "enriched")
    assert tables.partition_columns(dt) == [] and not live_day_folders(tmp_path)
    assert report["files_before"] == 30 and report["files_after"] < 30 and report["rows_after"] == n
    assert report["version_after"] == report["version_before"] + 1  # one commit
    assert report["transactions_kept"] == 30 and all(dt.transaction_version(f"file.day{d}") == 40 for d in range(30))
    assert dt.metadata().configuration.get(tables.RESCORED_PROPERTY) == "true"
    after = run_query(tmp_path, "select id, novelty, story_id from enriched_versions order by id")
    assert after.equals(before)  # same rows and values; old rows still null in the newer columns
    assert after.column("novelty").null_count == n // 2


def test_relayout_never_rebases_over_a_writer_that_committed_during_the_rewrite(tmp_path, monkeypatch):
    """A backfill chunk commits (in the old layout) while the rewrite runs: that rewrite is not
    committed; the next one includes the chunk, so its rows are there once, in the new layout."""
    n = day_partitioned_lake(tmp_path, days=6, per_day=10)
    real_rows, raced = relayout._rows, []

    def racing_rows(*args):
        if not raced:  # the first rewrite: another writer commits before it does
            raced.append(1)
            old_layout_append(tmp_path, synth(7, T0 + timedelta(days=40), 3600, seed=99), "file.late", 7)
        return real_rows(*args)

    monkeypatch.setattr(relayout, "_rows", racing_rows)
    report = relayout.relayout(tmp_path)["enriched"]
    assert report["attempts"] == 2
    assert counts(tmp_path) == {"n": n + 7, "d": n + 7}
    assert not live_day_folders(tmp_path)
    assert tables.open_table(tmp_path, "enriched").transaction_version("file.late") == 7


def test_a_writer_holding_the_table_from_before_the_relayout_writes_in_the_new_layout(tmp_path):
    n = day_partitioned_lake(tmp_path, days=4, per_day=10)
    stale = tables.open_table(tmp_path, "enriched")
    relayout.relayout(tmp_path)
    tables.append(tmp_path, "enriched", synth(5, T0 + timedelta(days=9), 3600, seed=77), {"kafka.t.0": 5}, dt=stale)
    assert counts(tmp_path) == {"n": n + 5, "d": n + 5} and not live_day_folders(tmp_path)
    assert tables.open_table(tmp_path, "enriched").transaction_version("kafka.t.0") == 5


def test_lake_migrate_rewrites_a_day_partitioned_lake_then_has_nothing_to_do(tmp_path):
    n = day_partitioned_lake(tmp_path, days=5, per_day=10)
    first = CliRunner().invoke(main, ["lake", "migrate", "--lake", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert '"rows_after": 50' in first.output and counts(tmp_path) == {"n": n, "d": n}
    again = CliRunner().invoke(main, ["lake", "migrate", "--lake", str(tmp_path)])
    assert again.exit_code == 1 and counts(tmp_path) == {"n": n, "d": n}
