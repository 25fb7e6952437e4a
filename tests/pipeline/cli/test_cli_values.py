"""Every bad value on the command line is a clear error before anything runs.

`test_every_option_refuses_bad_values` walks the click group recursively (a new command or option
is covered without touching this file) and gives each option and argument the bad values of its
type (and of its name, for options whose meaning the type alone does not carry). Each invocation
must exit non-zero with one `Error: ...` line naming the option and the value, no traceback, the
command's body never entered (the callbacks are replaced by a recorder, so nothing loads a model,
starts a broker or writes a file even when a value is wrongly accepted) and the lake untouched.
An option whose type has no known bad values fails the test until it gets some, or is listed
as free text.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from support.lakefixtures import post, write_alert, write_posts

from finpulse.pipeline.cli import options
from finpulse.pipeline.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
A_FILE = str(ROOT / "tests" / "fixtures" / "sentiment_small.csv")
A_DIR = str(ROOT / "tests" / "fixtures")
ARTIFACT = str(ROOT / "models" / "default")
MISSING = "/nonexistent/finpulse/x"

# Options whose value is free text: any string is a valid name, version or SQL.
FREE_TEXT = {
    "--group",  # a Kafka group id
    "--model-version", "--version",  # model version labels
    "--base",  # a Hugging Face hub id or a local folder
    "sql", "beam_args", "args",  # SQL (checked by DuckDB), and what follows `--`
}

# Commands that read a lake: a local folder holding none is a bad --lake.
READS_A_LAKE = {"query", "rescore", "lake-check", "lake optimize", "lake migrate"}

# Bad values by option name: what the name promises beyond its type (these also apply when the
# option is typed as plain text, which is how it was before it had a type).
BY_NAME: dict[str, list[str]] = {
    "--bucket": ["banana", "0 hours", "2 fortnights"],
    "--keys": ["banana", "company,banana"],
    "--as-of": ["1", "99", "enriched@x", "nosuch@1", "yesterday"],
    "--since": ["yesterday", "2026-13-01"],
    "--until": ["yesterday"],
    "--choose-since": ["yesterday"], "--choose-until": ["yesterday"],
    "--confirm-since": ["yesterday"], "--confirm-until": ["yesterday"],
    "--webhook": ["not a url", "ftp://example.com/x"],
    "--bootstrap": ["localhost", "localhost:abc", "localhost:70000"],
    "--expansion-service": ["localhost", "localhost:abc"],
    "--dask-address": ["localhost", "http://localhost:8786", "tcp://localhost:abc"],
    "--topic": ["bad topic!"],
    "--kafka-topic": ["bad topic!"],
    "--topics": ["news,bad topic!"],
    "--host": ["bad host!"],
    "--metrics-host": ["bad host!"],
    "--port": ["abc", "-1", "70000"],
    "--metrics-port": ["abc", "-1", "70000"],
    "--dashboard-port": ["abc", "-1", "70000"],
    "--rate": ["abc", "0", "-5", "nan"],
    "--registry": [MISSING + ".json", "nosuchprofile"],
    "--device": ["gpu", "cuda:x"],
    "--inject": ["BA", "BA@yesterday", "ZZZZ@2026-11-03T14:00:00Z"],
    "--set": ["nosuch=1", "windows=abc", "windows"],
    "--points": ["nosuch"],
    "--input": [MISSING + "/*.jsonl"],
    "--repeat": ["sentiment=abc", "nosuch=2", "sentiment"],
    "--teacher": [MISSING, "nosuch=" + ARTIFACT],
    "--data": [MISSING + ".csv"],
    "--dev": [MISSING + ".csv", "nosuch=" + A_FILE],
    "--unlabeled": [MISSING + ".csv"],
    "--recipe": ["0.5", "a,b", "2,0.5"],
}


def bad_by_type(param: click.Parameter) -> list[str] | None:
    """Bad values for the parameter's type; None when the type is unknown here."""
    t = param.type
    if isinstance(t, click.Choice):
        return ["banana"]
    if isinstance(t, (click.IntRange, click.FloatRange)):
        out = ["abc"]
        if t.min is not None:
            out.append(str(t.min - 1) if isinstance(t, click.IntRange) else str(t.min - 0.5))
        if t.max is not None:
            out.append(str(t.max + 1))
        return out + (["nan"] if isinstance(t, click.FloatRange) else [])
    if t in (click.INT, click.FLOAT):
        return ["abc"]
    if isinstance(t, click.types.UnprocessedParamType):
        return []  # what follows `--`, handed on unread
    if isinstance(t, click.Path):
        return [*([MISSING] if t.exists else []), *([A_FILE] if not t.file_okay else []),
                *([A_DIR] if not t.dir_okay else [])]
    known = {"BucketWidth": ["banana"], "Choices": ["banana"], "IsoTime": ["yesterday"], "AsOf": ["yesterday"],
             "LakeLocation": ["ftp://host/lake", "s3://"], "Host": ["bad host!"], "HostPorts": ["localhost"],
             "WebUrl": ["not a url"], "Topics": ["bad topic!"], "Registry": [MISSING], "Device": ["gpu"],
             "Glob": [MISSING + "/*"], "Ticker": ["SPY,QQQ", "bad ticker!"], "TaskValue": [MISSING, "nosuch=" + A_FILE]}
    return known.get(type(t).__name__, [] if t == click.STRING else None)


def bad_values(where: str, param: click.Parameter) -> list[str] | None:
    name = param.opts[0] if isinstance(param, click.Option) else param.name or ""
    by_type = bad_by_type(param)
    by_name = BY_NAME.get(name, [])
    if name == "--lake" and not isinstance(param.type, click.Path):  # not the local-only demo lakes
        by_name = ["ftp://host/lake"] + ([MISSING] if where in READS_A_LAKE else [])
    if by_type is None and not by_name:
        return None
    out = list(dict.fromkeys([*(by_type or []), *by_name]))
    if not out and name not in FREE_TEXT:
        return None  # plain text that is not listed as free text: give it a type
    return out


def good_value(param: click.Parameter, tmp: Path) -> str:
    """A valid value for a required parameter, so that only the value under test is wrong."""
    name = param.opts[0] if isinstance(param, click.Option) else param.name or ""
    table = {"--topic": "news", "--data": A_FILE, "--file": A_FILE, "--out": str(tmp / "out"), "--input": A_FILE,
             "--rank": "2", "sql": "select 1", "artifact": ARTIFACT}
    if name in table:
        return table[name]
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    raise AssertionError(f"no good value known for the required {name}; add one to good_value()")


def commands(group: click.Group, path: tuple[str, ...] = ()):
    """(path, command) for every command under the group, recursively."""
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield path + (name,), cmd
            yield from commands(cmd, path + (name,))
        else:
            yield path + (name,), cmd


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def small_lake(tmp_path) -> Path:
    """Two enriched versions (5 then 3 posts) and one alerts version."""
    lake = tmp_path / "lake"
    write_posts(lake, [post(f"p{i}", i, "negative", ("AAPL",)) for i in range(5)])
    write_posts(lake, [post(f"q{i}", 10 + i) for i in range(3)], name="part-1")
    write_alert(lake, "AAPL", 5)
    return lake


def test_every_option_refuses_bad_values(small_lake, tmp_path, monkeypatch):
    ran: list[str] = []
    for path, cmd in commands(main):  # a group's callback runs before its sub-command is parsed: a no-op
        where = " ".join(path)
        monkeypatch.setattr(cmd, "callback", (lambda *a, **k: None) if isinstance(cmd, click.Group)
                            else lambda *a, _p=where, **k: ran.append(_p))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINPULSE_LAKE", str(small_lake))
    for var in ("FINPULSE_REGISTRY", "FINPULSE_DEVICE", "FINPULSE_PRECISION", "FINPULSE_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(var, raising=False)
    before = listing(small_lake)
    runner = CliRunner()
    pairs, invocations, failures, untyped = 0, 0, [], []
    for path, cmd in commands(main):
        where = " ".join(path)
        params = [p for p in cmd.params if not (isinstance(p, click.Option) and (p.is_flag or p.is_bool_flag))
                  and p.name != "help"]
        required = [p for p in params if p.required]
        for param in params:
            bad = bad_values(where, param)
            if bad is None:
                untyped.append(f"{where} {param.opts[0] if isinstance(param, click.Option) else param.name}")
                continue
            if not bad:
                continue
            pairs += 1
            for value in bad:
                invocations += 1
                args = list(path)
                for other in required:
                    if other is not param and isinstance(other, click.Option):
                        args += [other.opts[0], good_value(other, tmp_path)]
                if isinstance(param, click.Option):
                    args += [param.opts[0], value]
                args += [value if other is param else good_value(other, tmp_path)
                         for other in cmd.params
                         if isinstance(other, click.Argument) and (other.required or other is param)]
                ran.clear()
                out = runner.invoke(main, args)
                text = out.output  # stdout and stderr as the user sees them
                errors = [line for line in text.splitlines() if line.startswith("Error:")]
                names = param.opts if isinstance(param, click.Option) else [param.name or "", param.human_readable_name]
                problem = None
                if ran:
                    problem = "accepted: the command ran"
                elif out.exit_code == 0:
                    problem = "exit 0"
                elif "Traceback" in text or (out.exception and not isinstance(out.exception, SystemExit)):
                    problem = f"traceback: {out.exception!r}"
                elif len(errors) != 1:
                    problem = f"{len(errors)} Error: lines"
                elif value not in errors[0] or not (
                        any(n.lower() in errors[0].lower() for n in names)
                        or isinstance(param, click.Argument) and "Invalid value for" in errors[0]):  # named by metavar
                    problem = "the Error line does not name the option and the value"
                if problem:
                    failures.append(f"{where} {args[len(path):]}: {problem}: {(errors or [text.strip()[-200:]])[0]}")
    assert listing(small_lake) == before, "a rejected command wrote to the lake"
    assert not (tmp_path / "lake").exists() or (tmp_path / "lake") == small_lake
    print(f"{pairs} (command, option) pairs, {invocations} invocations, {len(failures)} failed")
    print("\n".join(failures))
    assert not untyped, ("options with no known bad values (give them a type in options.py or list them as "
                         f"free text): {untyped}")
    assert not failures, f"{len(failures)} of {invocations} bad values not refused cleanly:\n" + "\n".join(failures)
    assert pairs >= 100  # the walk really reached the commands


def test_as_of_names_a_table_version_or_gives_a_time(small_lake):
    """TABLE@VERSION pins that table; the others are read as they were at that commit; a version the
    table does not have names the table and its latest version."""
    def run(*args: str):
        return CliRunner().invoke(main, ["query", "--lake", str(small_lake), "--format", "json", *args])

    count = "select (select count(*) from enriched) e, (select count(*) from alerts) a"
    assert run("--as-of", "enriched@0", count).output.strip() == '{"e": 5, "a": 0}'  # alerts came later
    assert run("--as-of", "enriched@1", count).output.strip() == '{"e": 8, "a": 0}'
    assert run("--as-of", "alerts@0", count).output.strip() == '{"e": 8, "a": 1}'
    out = run("--as-of", "enriched@99", count)
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert out.output.strip() == "Error: --as-of enriched@99: table enriched has versions up to 1 (latest: enriched@1)"
    out = run("--as-of", "alerts@1", count)
    assert out.exit_code == 2 and "latest: alerts@0" in out.output
    out = run("--as-of", "1", count)  # a bare number names no table
    assert out.exit_code == 2 and "e.g. enriched@1" in out.output


def test_commands_that_read_a_lake_say_when_there_is_none(small_lake, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["query", "--lake", str(empty), "select 1"], ["alerts", "--lake", str(empty)],
                 ["lake", "optimize", "--lake", str(empty)], ["rescore", "--lake", str(empty)]):
        out = CliRunner().invoke(main, args)
        assert out.exit_code == 2 and "holds no lake" in out.output, (args, out.output)
        assert "Traceback" not in out.output
    assert list(empty.iterdir()) == []
    out = CliRunner().invoke(main, ["lake", "optimize", "--lake", str(small_lake), "--retention-hours", "24"])
    assert out.exit_code == 0 and '"enriched"' in out.output, out.output


def test_stream_and_backfill_say_they_create_a_lake(small_lake, tmp_path, capsys):
    options.announce_new_lake(str(tmp_path / "new"))
    assert capsys.readouterr().err == f"no lake at {tmp_path / 'new'}: creating a new one\n"
    options.announce_new_lake(str(small_lake))
    assert capsys.readouterr().err == ""


PROBE = """
import logging, click
from finpulse.pipeline.cli.main import main

@main.command()
def probe():
    import apache_beam.io.gcp.internal.clients.bigquery  # logs its 'apitools not found' line on import
    logging.getLogger("somelib").warning("a real warning from a library")
    logging.warning("a real root warning")

main(["probe"])
"""


def test_import_noise_is_dropped_and_real_warnings_still_show():
    err = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120).stderr
    assert "apitools" not in err, err
    assert "a real warning from a library" in err and "a real root warning" in err, err


def test_an_object_store_that_cannot_be_opened_is_one_error_line(monkeypatch):
    from finpulse.pipeline.lake import tables

    def unreachable(root):
        raise OSError("no credentials\nretried 3 times")

    monkeypatch.setattr(tables, "exists", unreachable)
    out = CliRunner().invoke(main, ["query", "--lake", "s3://bucket/lake", "select 1"])
    assert out.exit_code == 2 and "Traceback" not in out.output, out.output
    assert out.output.strip().splitlines()[-1] == ("Error: --lake 's3://bucket/lake': cannot open it (no credentials); "
                                                   "check the URL, its endpoint_override and the credentials")
