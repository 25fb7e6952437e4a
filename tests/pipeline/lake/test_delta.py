"""The lake as Delta tables: compaction under load, the dashboard across compactions, time travel,
rescoring, migration from the previous layout, and a second engine reading the same rows."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.lakefixtures import dead_letter_rows, post

from finpulse.dashboard.store import LakeStore
from finpulse.pipeline.cli.main import main
from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.commit import Lake, Row, write_parquet
from finpulse.pipeline.lake.query import run_query
from finpulse.schemas.arrow import DEADLETTER_SCHEMA, ENRICHED_SCHEMA


def rows(prefix: str, source: str, start: int, n: int, sentiment: str = "neutral") -> list[Row]:
    return [
        Row("enriched", post(f"{prefix}{p}", p % 600, sentiment, ("AAPL",)), source, p, "2026-03-02")
        for p in range(start, start + n)
    ]


def id_set(lake, **kw) -> list[str]:
    return [r["id"] for r in run_query(lake, "select id from enriched order by id", **kw).to_pylist()]


@pytest.mark.slow
def test_2000_small_commits_then_optimize_keeps_every_row_and_a_query_during_it_succeeds(tmp_path):
    lake = Lake(tmp_path)
    for i in range(2000):
        lake.commit_bundle({"kafka.t.0": 5 * i + 5}, rows("p", "kafka.t.0", 5 * i, 5))
    before = id_set(tmp_path)
    files_before = len(tables.snapshot(tmp_path, "enriched").files)
    assert len(before) == len(set(before)) == 10000 and files_before == 2000

    results, errors, stop = [], [], threading.Event()

    def reader() -> None:  # keeps querying while compaction and vacuum run
        while not stop.is_set():
            try:
                results.append(
                    run_query(tmp_path, "select count(*) n, count(distinct id) d from enriched").to_pylist()[0]
                )
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        out = CliRunner().invoke(main, ["lake", "optimize", "--lake", str(tmp_path)])  # default retention
    finally:
        stop.set()
        t.join()
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)["enriched"]
    assert report["files_before"] == 2000 and report["files_after"] < 20  # below 1% of before
    assert len(tables.snapshot(tmp_path, "enriched").files) < 20
    assert id_set(tmp_path) == before
    assert results and not errors, errors[:3]
    assert all(r == {"n": 10000, "d": 10000} for r in results)
    assert Lake(tmp_path).committed("kafka.t.0") == 10000  # positions survive compaction


def test_the_dashboard_follows_table_versions_across_a_compaction(tmp_path):
    """Loaded incrementally before and after `lake optimize`: no row counted twice, none dropped,
    dead letters counted from the log."""
    lake = Lake(tmp_path)
    for i in range(6):
        lake.commit_bundle(
            {"kafka.t.0": 10 * i + 10},
            rows("a", "kafka.t.0", 10 * i, 8) + dead_letter_rows("kafka.t.0", range(10 * i + 8, 10 * i + 10)),
        )
    store = LakeStore(tmp_path, min_refresh_s=0)
    store.refresh()
    assert (store.status().posts, store.status().dead_letters) == (48, 12)
    tables.optimize(tmp_path, retention_hours=0)
    lake.commit_bundle({"kafka.t.0": 70}, rows("a", "kafka.t.0", 60, 10))
    assert store.refresh() is True
    assert (store.status().posts, store.status().dead_letters) == (58, 12)
    tables.optimize(tmp_path, retention_hours=0)
    store.refresh()
    assert (store.status().posts, store.status().dead_letters) == (58, 12)
    assert store.query("select count(distinct id) n from posts").iloc[0, 0] == 58


def test_as_of_a_version_or_a_time_shows_the_tables_as_they_were(tmp_path):
    lake = Lake(tmp_path)
    lake.commit_bundle({"kafka.t.0": 3}, rows("a", "kafka.t.0", 0, 3))
    first = tables.open_table(tmp_path, "enriched").version()
    when = datetime.now(timezone.utc)
    lake.commit_bundle({"kafka.t.0": 5}, rows("a", "kafka.t.0", 3, 2))
    assert len(id_set(tmp_path)) == 5
    assert id_set(tmp_path, as_of=first) == ["a0", "a1", "a2"]
    assert id_set(tmp_path, as_of=when) == ["a0", "a1", "a2"]
    out = CliRunner().invoke(
        main,
        [
            "query",
            "--lake",
            str(tmp_path),
            "--as-of",
            f"enriched@{first}",
            "--format",
            "json",
            "select count(*) n from enriched",
        ],
    )
    assert out.exit_code == 0 and json.loads(out.stdout) == {"n": 3}, out.output
    assert (
        CliRunner().invoke(main, ["query", "--lake", str(tmp_path), "--as-of", "yesterday", "select 1"]).exit_code == 2
    )


@pytest.mark.slow
def test_rescore_with_a_second_registry_keeps_both_versions_and_reads_the_newest(tmp_path):
    from finpulse.models.artifacts.registry import load_registry

    root = Path(__file__).resolve().parents[3]
    old_version = "test"
    texts = {
        "r0": "Apple shares collapse after a disastrous quarter and a profit warning",
        "r1": "Apple beats estimates and raises its dividend, shares surge",
        "r2": "Apple will hold its annual meeting on Tuesday",
    }
    lake = Lake(tmp_path)
    lake.commit_bundle(
        {"file.x": 3},
        [
            Row("enriched", post(i, k, "neutral", ("AAPL",), text=t), "file.x", k, "2026-03-02")
            for k, (i, t) in enumerate(texts.items())
        ],
    )
    before = tables.open_table(tmp_path, "enriched").version()
    registry = str(root / "models" / "registry-accurate.json")
    new_version = load_registry(registry).model_version
    out = CliRunner().invoke(main, ["rescore", "--lake", str(tmp_path), "--registry", registry, "--device", "cpu"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.strip().splitlines()[-1])["rescored"] == 3
    per_version = run_query(
        tmp_path, "select model_version, count(*) n, count(distinct id) d from enriched_versions group by 1 order by 1"
    ).to_pylist()
    assert sorted((r["model_version"], r["n"], r["d"]) for r in per_version) == sorted(
        [(old_version, 3, 3), (new_version, 3, 3)]
    )
    newest = run_query(tmp_path, "select id, model_version, sentiment from enriched order by id").to_pylist()
    assert [r["model_version"] for r in newest] == [new_version] * 3
    assert {r["id"]: r["sentiment"] for r in newest}["r0"] == "negative"
    old = run_query(tmp_path, "select model_version, sentiment from enriched", as_of=before).to_pylist()
    assert old == [{"model_version": old_version, "sentiment": "neutral"}] * 3
    assert len(id_set(tmp_path, model_version=old_version)) == 3
    # a second run finds nothing left to do
    again = CliRunner().invoke(main, ["rescore", "--lake", str(tmp_path), "--registry", registry, "--device", "cpu"])
    assert json.loads(again.output.strip().splitlines()[-1])["rescored"] == 0


def legacy_lake(root: Path) -> None:
    """A lake of the previous layout: published files, one commit still in staging (committed,
    publish interrupted), uncommitted staging garbage, and progress records."""
    d = root / "enriched" / "date=2026-03-02"
    d.mkdir(parents=True)
    write_parquet(
        d / "kafka.t.0-000000000000-000000000004.parquet", [post(f"m{i}", i) for i in range(4)], ENRICHED_SCHEMA
    )
    staged = root / "_staging" / "kafka.t.0" / "b1" / "enriched-2026-03-02-x.parquet"
    staged.parent.mkdir(parents=True)
    write_parquet(staged, [post(f"m{i}", i) for i in range(4, 6)], ENRICHED_SCHEMA)
    (root / "_staging" / "kafka.t.0" / "junk").mkdir()
    (root / "_staging" / "kafka.t.0" / "junk" / "half.parquet").write_bytes(b"PAR1")
    dd = root / "deadletter" / "date=2026-11-02"
    dd.mkdir(parents=True)
    write_parquet(
        dd / "file.ab-000000000000-000000000003.parquet",
        [r.data for r in dead_letter_rows("file.ab", range(3))],
        DEADLETTER_SCHEMA,
    )
    (root / "_progress").mkdir()
    final = "enriched/date=2026-03-02/kafka.t.0-000000000004-000000000006.parquet"
    (root / "_progress" / "kafka.t.0.json").write_text(
        json.dumps({"end": 6, "pending": [[str(staged.relative_to(root)), final]]})
    )
    (root / "_progress" / "file.ab.json").write_text(json.dumps({"end": 3, "pending": []}))


def test_migrate_keeps_every_row_once_and_each_position_and_refuses_twice(tmp_path):
    legacy_lake(tmp_path)
    runner = CliRunner()
    out = runner.invoke(main, ["lake", "migrate", "--lake", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert id_set(tmp_path) == [f"m{i}" for i in range(6)]  # the staged-but-committed file included
    assert run_query(tmp_path, "select count(*) n from deadletter").to_pylist()[0]["n"] == 3
    assert Lake(tmp_path).all_committed(["kafka.t.0", "file.ab"]) == {"kafka.t.0": 6, "file.ab": 3}
    assert not (tmp_path / "_progress").exists() and not (tmp_path / "_staging").exists()
    assert (tmp_path / "_legacy_layout" / "enriched").is_dir()  # kept for the operator, outside the tables
    again = runner.invoke(main, ["lake", "migrate", "--lake", str(tmp_path)])
    assert again.exit_code == 1 and "already migrated" in again.output
    # and the migrated table keeps working: a stream resuming at 6 appends without duplicates
    Lake(tmp_path).commit("kafka.t.0", 4, 8, rows("m", "kafka.t.0", 4, 4))
    assert id_set(tmp_path) == [f"m{i}" for i in range(8)]


def test_a_second_engine_reads_the_same_rows_from_the_tables(tmp_path):
    """deltalake's own reader (its log replay and scan, not finpulse's DuckDB views) sees exactly
    what `finpulse query` sees, including after a compaction."""
    from deltalake import DeltaTable

    lake = Lake(tmp_path)
    for i in range(5):
        lake.commit_bundle({"kafka.t.0": 4 * i + 4},
                           rows("x", "kafka.t.0", 4 * i, 3) + dead_letter_rows("kafka.t.0", [4 * i + 3]))
    tables.optimize(tmp_path, retention_hours=0)
    lake.commit_bundle({"kafka.t.0": 24}, rows("x", "kafka.t.0", 20, 4))
    for table, key in (("enriched", "id"), ("deadletter", "kafka_offset")):
        ours = sorted(r[key] for r in run_query(tmp_path, f"select {key} from {table}").to_pylist())
        theirs = sorted(DeltaTable(str(tmp_path / table)).to_pyarrow_table(columns=[key]).column(key).to_pylist())
        assert ours == theirs and len(ours) == {"enriched": 19, "deadletter": 5}[table]


def test_readers_see_one_model_version_per_id_and_the_dashboard_compares_two(tmp_path):
    """After a rescore (here: rows of a second model version committed as rescore does), the
    default view holds the newest model's row of each id, and the dashboard's comparison pairs
    the two versions' labels over the same posts."""
    from datetime import timedelta

    from support.lakefixtures import T0

    from finpulse.dashboard import queries
    from finpulse.dashboard.filters import Filters

    lake = Lake(tmp_path)
    lake.commit_bundle(
        {"file.x": 4}, [Row("enriched", post(f"p{i}", i, "neutral"), "file.x", i, "2026-03-02") for i in range(4)]
    )
    tables.open_table(tmp_path, "enriched").alter.set_table_properties(
        {tables.RESCORED_PROPERTY: "true"}, raise_if_not_exists=False
    )
    newer = []
    for i in range(4):
        row = post(f"p{i}", i, "negative" if i < 3 else "neutral")
        newer.append({**row, "model_version": "m2", "ingested_at": row["ingested_at"] + timedelta(days=1)})
    tables.append(tmp_path, "enriched", tables.rows_table("enriched", newer, ["2026-03-02"] * 4))
    got = run_query(
        tmp_path, "select model_version, count(*) n, count(distinct id) d from enriched group by 1"
    ).to_pylist()
    assert got == [{"model_version": "m2", "n": 4, "d": 4}]
    assert run_query(tmp_path, "select count(*) n from enriched_versions").to_pylist()[0]["n"] == 8
    store = LakeStore(tmp_path, min_refresh_s=0)
    assert queries.model_versions(store) == ["m2", "test"]
    table = queries.compare_models(store, "test", "m2", Filters(start=T0, end=T0 + timedelta(hours=1)))
    assert [(r.sentiment_a, r.sentiment_b, r.posts) for r in table.itertuples()] == [
        ("neutral", "negative", 3),
        ("neutral", "neutral", 1),
    ]
