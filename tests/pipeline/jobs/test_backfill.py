"""Backfill: JSONL, CSV and Parquet archives through the same transforms; re-runs add nothing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from support.archives import write_archives  # noqa: F401

from finpulse.pipeline.cli.main import main
from finpulse.pipeline.jobs.backfill import run_backfill
from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.query import run_query

pytestmark = pytest.mark.slow




def test_backfill_reads_all_formats_and_rerun_adds_nothing(tmp_path):
    posts = write_archives(tmp_path)
    lake = tmp_path / "lake"
    first = run_backfill(str(tmp_path / "*.*"), str(lake), chunk=40, progress=False)
    compacted = first.pop("compacted")
    assert first == {"files": 3, "rows": 151, "processed": 151, "skipped_already_done": 0}
    # a commit per 40-row chunk, compacted when the backfill ends: one file per table
    assert compacted["enriched"]["files_before"] > 1 and compacted["enriched"]["files_after"] == 1
    assert len(tables.snapshot(lake, "enriched").files) == 1
    stats = run_query(lake, "select count(*) n, count(distinct id) d, count(kafka_offset) k from enriched").to_pylist()[0]
    assert stats == {"n": 150, "d": 150, "k": 0}  # backfill rows carry no Kafka coordinates
    dead = run_query(lake, "select error, source_ref, source_row from deadletter").to_pylist()
    assert len(dead) == 1 and "not valid JSON" in dead[0]["error"]
    assert dead[0]["source_ref"].endswith("a.jsonl") and dead[0]["source_row"] == 60
    # the CSV's comma-separated tickers arrive as a list; cashtags in text are merged in
    row = run_query(lake, "select tickers, text from enriched where id = ?", ["arc-60"]).to_pylist()[0]
    assert set(posts[60].get("tickers", [])) <= set(row["tickers"])
    second = run_backfill(str(tmp_path / "*.*"), str(lake), chunk=40, progress=False)
    assert second["processed"] == 0 and second["skipped_already_done"] == 151
    assert second["compacted"] == {}  # nothing written, nothing rewritten (a running stream's files included)
    assert run_query(lake, "select count(*) n from enriched").to_pylist()[0]["n"] == 150


def test_backfill_cli_reports_missing_inputs(tmp_path):
    result = CliRunner().invoke(main, ["backfill", "--input", str(tmp_path / "none*.jsonl"), "--lake", str(tmp_path / "l")])
    assert result.exit_code != 0 and "no file matches" in result.output
