"""Security: read-only SQL confined to the lake, safetensors-only models, Kafka secrets passed
through and never logged."""

from __future__ import annotations

import ast
import json
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.processes import FINPULSE

from finpulse.pipeline.cli.main import main
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.query import run_query

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def lake(tmp_path):
    now = datetime(2026, 11, 2, tzinfo=timezone.utc)
    rows = [Row("deadletter", {"raw": b"x", "raw_size": 1, "error": "e", "stage": "parse", "ingested_at": now,
                               "kafka_offset": p}, "kafka.t.0", p, "2026-11-02") for p in range(3)]
    Lake(tmp_path / "lake").commit("kafka.t.0", 0, 3, rows)
    return tmp_path / "lake"


def attacks(outside: Path, lake: Path) -> list[str]:
    """Statements a `finpulse query` user could try: write or read files, attach, change settings."""
    inside = lake / "enriched" / "injected.parquet"
    return [
        f"COPY (SELECT 1) TO '{outside / 'out.csv'}'",
        f"COPY (SELECT 1 AS id) TO '{inside}' (FORMAT parquet)",  # rows injected into the lake itself
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        f"ATTACH '{outside / 'x.db'}' AS x",
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CREATE TABLE t AS SELECT 1",
        "DROP VIEW enriched",
        f"EXPORT DATABASE '{outside / 'export'}'",
        "PRAGMA enable_profiling",
        "CALL pragma_version()",
        f"SELECT 1; COPY (SELECT 1) TO '{outside / 'second.csv'}'",  # a write hidden behind a select
        f"SELECT * FROM read_parquet('{outside / '*.parquet'}')",
    ]


def test_query_refuses_everything_but_reading_the_lake(lake, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    runner = CliRunner()
    for sql in attacks(outside, lake):
        out = runner.invoke(main, ["query", "--lake", str(lake), sql])
        assert out.exit_code != 0 and "query failed" in out.output, (sql, out.output)
    assert list(outside.iterdir()) == []
    assert not (lake / "enriched" / "injected.parquet").exists()  # nothing injected into the table folder
    ok = runner.invoke(main, ["query", "--lake", str(lake), "--format", "json", "select count(*) n from deadletter"])
    assert ok.exit_code == 0 and json.loads(ok.stdout) == {"n": 3}
    # the lake's own files stay readable directly, as documented
    glob = lake / "deadletter" / "**" / "*.parquet"
    assert run_query(lake, f"select count(*) n from read_parquet('{glob}')").to_pylist() == [{"n": 3}]


def test_query_parameters_are_bound_not_spliced(lake):
    hostile = "x' OR '1'='1'; DROP VIEW deadletter; --"
    assert run_query(lake, "select count(*) n from deadletter where error = ?", [hostile]).to_pylist() == [{"n": 0}]
    assert run_query(lake, "select count(*) n from deadletter").to_pylist() == [{"n": 3}]


def _calls_with_keyword(name: str) -> list[str]:
    """file:line of every call in the project's code that passes keyword `name`."""
    found = []
    for folder in ("pipeline", "models", "schemas", "dashboard", "infra"):
        for f in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Call) and any(k.arg == name for k in node.keywords):
                    found.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    return found


def test_models_never_trust_remote_code_and_never_unpickle():
    assert _calls_with_keyword("trust_remote_code") == []
    sources = "\n".join(f.read_text() for d in ("pipeline", "models") for f in (ROOT / d).rglob("*.py"))
    for unsafe in ("torch.load(", "pickle.load(", "pickle.loads("):
        assert unsafe not in sources, unsafe
    assert all("use_safetensors=True" in ast.unparse(n) for n in ast.walk(ast.parse((ROOT / "models" / "artifacts" / "artifact.py").read_text()))
               if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "from_pretrained"
               and getattr(n.func.value, "id", "") == "AutoModel")


def test_kafka_ssl_and_sasl_settings_pass_through_from_the_environment(monkeypatch):
    from finpulse.pipeline.runtime.settings import KafkaSettings

    env = {"FINPULSE_KAFKA_BOOTSTRAP": "k1:9093,k2:9093", "FINPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "FINPULSE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "FINPULSE_KAFKA_SASL_PLAIN_USERNAME": "svc",
           "FINPULSE_KAFKA_SASL_PLAIN_PASSWORD": "s3cr3t-from-env", "FINPULSE_KAFKA_SSL_CAFILE": "/etc/ca.pem"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = KafkaSettings()
    assert s.client_config() == {"bootstrap_servers": ["k1:9093", "k2:9093"], "security_protocol": "SASL_SSL",
                                 "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "svc",
                                 "sasl_plain_password": "s3cr3t-from-env", "ssl_cafile": "/etc/ca.pem"}
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(s.model_dump())


@pytest.mark.slow
def test_the_kafka_password_never_reaches_the_logs(tmp_path):
    """A stream pointed at an unreachable SASL_SSL broker logs that it waits, never the password."""
    import os

    secret = "pw-" + os.urandom(6).hex()
    env = {**os.environ, "FINPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "FINPULSE_KAFKA_SASL_MECHANISM": "PLAIN",
           "FINPULSE_KAFKA_SASL_PLAIN_USERNAME": "svc", "FINPULSE_KAFKA_SASL_PLAIN_PASSWORD": secret}
    log = tmp_path / "run.log"
    proc = subprocess.Popen(FINPULSE + ["stream", "--bootstrap", "127.0.0.1:1", "--topics", "t", "--lake", str(tmp_path / "lake"), "-v"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while "waiting for Kafka" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    text = log.read_text(errors="replace")
    assert secret not in text and "svc" not in text


def test_the_kafka_password_can_come_from_a_secrets_file(monkeypatch, tmp_path):
    from pydantic import ValidationError

    from finpulse.pipeline.runtime.settings import KafkaSettings

    secret = tmp_path / "kafka-password"
    secret.write_text("s3cr3t-from-file\n")
    monkeypatch.setenv("FINPULSE_KAFKA_SASL_PLAIN_PASSWORD_FILE", str(secret))
    s = KafkaSettings()
    assert s.client_config()["sasl_plain_password"] == "s3cr3t-from-file"
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(s.model_dump())
    monkeypatch.setenv("FINPULSE_KAFKA_SASL_PLAIN_PASSWORD", "also-set")
    with pytest.raises(ValidationError, match="not both"):
        KafkaSettings()
    monkeypatch.delenv("FINPULSE_KAFKA_SASL_PLAIN_PASSWORD")
    monkeypatch.setenv("FINPULSE_KAFKA_SASL_PLAIN_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="cannot read the Kafka password file"):
        KafkaSettings()


def test_an_unreadable_password_file_is_a_clear_usage_error(tmp_path):
    env = {**__import__("os").environ, "FINPULSE_KAFKA_SASL_PLAIN_PASSWORD_FILE": str(tmp_path / "nope")}
    out = subprocess.run(FINPULSE + ["stream", "--bootstrap", "127.0.0.1:1", "--topics", "t", "--lake", str(tmp_path / "l")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "cannot read the Kafka password file" in out.stderr and "Traceback" not in out.stderr
