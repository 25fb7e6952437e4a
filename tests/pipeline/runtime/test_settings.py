"""The one settings model: precedence (default < file < environment < flag), where each value came from,
and no module reading the environment behind its back."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from finpulse.pipeline.cli import main
from finpulse.pipeline.runtime.settings import load_settings, settings_with_sources
from finpulse.schemas.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "finpulse.toml"
    path.write_text('[stream]\nlake = "/from/file"\ngroup = "file-group"\nprecision = "fp32"\n'
                    '[alerts]\nbucket = "1 day"\n[alerts.detector]\nalpha = 0.0001\nmin_ratio = 3.0\n')
    return path


def test_each_layer_beats_the_one_below(config_file, monkeypatch):
    monkeypatch.setenv("FINPULSE_GROUP", "env-group")
    monkeypatch.setenv("FINPULSE_ALERTS__DETECTOR__MIN_RATIO", "2.5")
    s = load_settings({"stream": {"precision": "bf16"}}, config_file)
    assert s.stream.lake == "/from/file"  # file over default
    assert s.stream.group == "env-group"  # environment over file
    assert s.stream.precision == "bf16"  # flag over file
    assert s.alerts.bucket == "1 day" and s.alerts.detector.alpha == 0.0001  # nested file tables
    assert s.alerts.detector.min_ratio == 2.5  # nested environment over file
    assert s.alerts.detector.windows == (1, 2)  # untouched fields keep their defaults


def test_config_show_names_the_source_of_every_value(config_file, monkeypatch):
    monkeypatch.setenv("FINPULSE_GROUP", "env-group")
    monkeypatch.setenv("FINPULSE_KAFKA_BOOTSTRAP", "broker:9093")
    out = CliRunner().invoke(main, ["config", "show", "--config", str(config_file), "--format", "json",
                                    "--set", "stream.precision=bf16", "--set", "stories.threshold=0.7"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["stream.lake"] == {"value": "/from/file", "source": f"file {config_file}"}
    assert shown["stream.group"] == {"value": "env-group", "source": "environment"}
    assert shown["stream.kafka.bootstrap"] == {"value": "broker:9093", "source": "environment"}
    assert shown["stream.precision"] == {"value": "bf16", "source": "flag"}
    assert shown["stories.threshold"] == {"value": 0.7, "source": "flag"}
    assert shown["alerts.detector.alpha"]["source"] == f"file {config_file}"
    assert shown["inference.max_batch"] == {"value": 256, "source": "default"}
    assert {name.split(".")[0] for name in shown} == {"stream", "alerts", "stories", "inference", "models",
                                                       "linking", "dashboard"}


def test_secrets_are_not_printed(monkeypatch):
    monkeypatch.setenv("FINPULSE_KAFKA_SASL_PLAIN_PASSWORD", "hunter2")
    rows = {name: value for name, value, _ in settings_with_sources()}
    assert rows["stream.kafka.sasl_plain_password"] == "***"


def test_a_bad_file_or_value_says_what_to_fix(tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("[streem]\nlake = 1\n")
    with pytest.raises(ConfigError, match="unknown section.*streem"):
        load_settings(config_file=bad)
    bad.write_text("[stream\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=bad)
    monkeypatch.setenv("FINPULSE_ALERTS__DETECTOR__ALPHA", "lots")
    with pytest.raises(ConfigError, match="alpha"):
        load_settings()


def test_the_library_reads_its_settings_from_the_model(monkeypatch, tmp_path):
    # the values the library used to read from os.environ itself now come through the settings
    from finpulse.models.artifacts.bases import cache_root
    from finpulse.pipeline.sources.kafka import TopicWatch

    monkeypatch.setenv("FINPULSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FINPULSE_METADATA_CHECK_S", "7")
    assert cache_root() == tmp_path / "cache"
    assert TopicWatch().every == 7.0


def test_no_module_reads_the_environment_outside_settings():
    # Process environment for native libraries (allocator, OpenMP) is set, not read as our settings;
    # devtools drive child processes. Everything else asks the settings model.
    allowed = {"pipeline/runtime/settings.py", "pipeline/runtime/memory_env.py"}
    offenders = []
    for folder in ("pipeline", "models", "dashboard", "schemas"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if rel in allowed or rel.startswith("pipeline/devtools/"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                reads = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                         and node.func.attr == "get" and ast.unparse(node.func.value) == "os.environ"
                         ) or (isinstance(node, ast.Call) and ast.unparse(node.func) == "os.getenv") or (
                    isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ"
                    and isinstance(node.ctx, ast.Load))
                if reads:
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == [], f"read settings through finpulse.pipeline.runtime.settings: {offenders}"


def test_the_config_file_reaches_the_code_that_builds_a_section(tmp_path, monkeypatch):
    # the file is not only shown by `config show`: a section built anywhere reads it, below the environment
    from finpulse.models.artifacts.bases import cache_root
    from finpulse.pipeline.runtime.settings import StreamSettings

    cfg = tmp_path / "f.toml"
    cfg.write_text(f'[models]\ncache = "{tmp_path / "from-file"}"\n[stream]\ngroup = "file-group"\n'
                   '[stream.kafka]\nbootstrap = "filehost:9092"\n[stories]\nthreshold = 0.7\n')
    monkeypatch.setenv("FINPULSE_CONFIG", str(cfg))
    monkeypatch.delenv("FINPULSE_CACHE", raising=False)
    assert cache_root() == tmp_path / "from-file"
    assert StreamSettings().group == "file-group" and StreamSettings().kafka.bootstrap == "filehost:9092"
    assert StreamSettings(group="flag").group == "flag"  # a flag beats the file
    monkeypatch.setenv("FINPULSE_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"  # the environment beats the file
    assert load_settings().stories.threshold == 0.7
