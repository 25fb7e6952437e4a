"""The training, card and measurement tools as `finpulse` commands: each answers --help, refuses a bad
value with one `Error:` line naming the option before any work starts, and hands its options to the
library function it wraps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from finpulse.pipeline.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
A_FILE = str(ROOT / "tests" / "fixtures" / "sentiment_small.csv")
ARTIFACT = str(ROOT / "models" / "default")

# (command, arguments with one bad value, the option the error must name)
BAD = [
    (["refit-head"], ["--threads", "0"], "--threads"),
    (["refit-head"], ["--model", str(ROOT / "tests")], "--model"),  # a folder, but no artifact in it
    (["train-entity-head"], ["--data", A_FILE, "--epochs", "0"], "--epochs"),
    (["train-entity-head"], ["--data", A_FILE, "--repeat", "nosuch=3"], "--repeat"),  # not a --data file's stem
    (["train-entity-head"], ["--repeat", "sentiment_small=x", "--data", A_FILE], "--repeat"),
    # --repeat before --data is read against the --data files all the same (--data is parsed first)
    (["train-entity-head"], ["--repeat", "sentiment_small=3", "--data", A_FILE, "--epochs", "0"], "--epochs"),
    (["cards"], [str(ROOT / "tests"), "--data", str(ROOT)], "ARTIFACT"),
    (["cards"], [ARTIFACT, "--data", "/nonexistent/finpulse"], "--data"),
    (["bench-int8"], ["--paths", "ort_int8,banana"], "--paths"),
    (["bench-int8"], ["--reps", "-1"], "--reps"),
    (["bench-stories"], ["--device", "gpu"], "--device"),
    (["bench-stories"], ["--per-day", "0"], "--per-day"),
    (["realtext-eval"], ["--rate", "0"], "--rate"),
    (["realtext-eval"], ["--data", A_FILE], "--data"),
    (["gazetteer", "build"], ["--out", str(ROOT / "tests")], "--out"),
    (["bench-lake"], ["--mode", "banana"], "--mode"),
    (["bench-lake"], ["--hours", "nan"], "--hours"),
    (["bench-lake"], ["--years", "2"], "--years"),  # an archive parameter in stream mode
]


@pytest.mark.parametrize("command", sorted({tuple(c) for c, _, _ in BAD}))
def test_command_answers_help(command):
    out = CliRunner().invoke(main, [*command, "--help"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"Usage: main {' '.join(command)} ")


@pytest.mark.parametrize(("command", "args", "option"), BAD, ids=[f"{' '.join(c)} {o}" for c, _, o in BAD])
def test_bad_value_is_one_error_line_naming_the_option(command, args, option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command that ran by mistake would write here, not into the repository
    out = CliRunner().invoke(main, [*command, *args])
    errors = [line for line in out.output.splitlines() if line.startswith("Error:")]
    assert out.exit_code == 2, out.output
    assert len(errors) == 1 and option in errors[0], out.output
    assert "Traceback" not in out.output and list(tmp_path.iterdir()) == []


def test_train_entity_head_hands_its_options_to_the_trainer(monkeypatch, tmp_path):
    seen: dict = {}

    def fake(artifact, data, repeat, **kwargs):
        seen.update(artifact=artifact, data=data, repeat=repeat, **kwargs)
        return {"best": {"epoch": 1}}

    monkeypatch.setattr("finpulse.models.training.entity_train.train_entity_head", fake)
    a, b = tmp_path / "sentfin_entity_train.jsonl", tmp_path / "finentity_train.jsonl"
    a.write_text("")
    b.write_text("")
    out = CliRunner().invoke(main, ["train-entity-head", "--model", ARTIFACT, "--data", str(a), "--data", str(b),
                                    "--repeat", "finentity_train=3", "--mixed-repeat", "5", "--epochs", "8"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"best": {"epoch": 1}}
    assert seen["repeat"] == {"finentity_train": 3} and seen["data"] == (a, b) and seen["artifact"] == Path(ARTIFACT)
    assert (seen["mixed_repeat"], seen["epochs"], seen["lr"], seen["seed"], seen["save"]) == (5, 8, 1e-3, 13, False)


def test_gazetteer_build_reproduces_the_committed_gazetteer(real_data, tmp_path):
    data = real_data.path("sec_company_tickers.csv", "sp500_constituents.csv").parent
    out = CliRunner().invoke(main, ["gazetteer", "build", "--data", str(data), "--out", str(tmp_path / "c.csv")])
    assert out.exit_code == 0, out.output
    committed = ROOT / "pipeline" / "enrich" / "reference" / "companies.csv"
    assert (tmp_path / "c.csv").read_bytes() == committed.read_bytes()
    assert json.loads(out.output)["bytes"] == committed.stat().st_size


def test_bench_lake_runs_the_stream_bench_with_the_given_sizes(tmp_path):
    """36 rows = 0.002 h x 3600 s x 5 posts/s; 3 timed commits of 5 rows each."""
    out = CliRunner().invoke(main, ["bench-lake", "--workdir", str(tmp_path / "w"), "--hours", "0.002",
                                    "--small-hours", "0.002", "--commits", "3", "--rate", "5", "--optimize-every", "2"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["rows"] == 36 and result["rate_posts_per_s"] == 5.0
    assert (result["commit_ms"]["commits"], result["commit_ms"]["rows_per_commit"]) == (3, 5)
    assert result["optimize"]["files_after"] == 1
