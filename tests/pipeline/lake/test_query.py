import json

from click.testing import CliRunner
from support.lakefixtures import post, write_posts

from finpulse.pipeline.cli.main import main
from finpulse.pipeline.lake.query import run_query


def test_views_exist_and_are_empty_on_a_missing_lake(tmp_path):
    lake = tmp_path / "nothing-here"
    for view in ("enriched", "deadletter", "alerts"):
        assert run_query(lake, f"select count(*) n from {view}").to_pylist() == [{"n": 0}]
    cols = run_query(lake, "select * from enriched").column_names
    assert "sentiment_score" in cols and "kafka_offset" in cols


def test_query_command_formats(tmp_path):
    write_posts(tmp_path, [post("p0", 0)])  # the command refuses a folder with no lake (test_cli_values.py)
    runner = CliRunner()
    out = runner.invoke(main, ["query", "--lake", str(tmp_path), "select 1 as a, 'x' as b"])
    assert out.exit_code == 0 and "a  b" in out.output and "(1 row)" in out.output
    out = runner.invoke(main, ["query", "--lake", str(tmp_path), "--format", "json", "select 1 as a"])
    assert json.loads(out.output) == {"a": 1}
    out = runner.invoke(main, ["query", "--lake", str(tmp_path), "--format", "csv", "select 1 as a"])
    assert out.output.splitlines() == ['"a"', "1"]
    out = runner.invoke(main, ["query", "--lake", str(tmp_path), "select * from nope"])
    assert out.exit_code != 0 and "query failed" in out.output
