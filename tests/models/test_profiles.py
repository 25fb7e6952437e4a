"""The fast and accurate profiles: which registry a command loads, and the profile's target-pass policy."""

from __future__ import annotations

import pytest

from finpulse.models.artifacts.profiles import chosen_registry, pick_profile
from finpulse.models.artifacts.registry import load_registry


def test_auto_is_accurate_on_a_gpu_and_fast_on_a_cpu():
    assert pick_profile("auto", "cuda") == pick_profile("auto", "cuda:1") == "accurate"
    assert pick_profile("auto", "cpu") == "fast"
    assert pick_profile("fast", "cuda") == "fast" and pick_profile("accurate", "cpu") == "accurate"
    with pytest.raises(ValueError, match="unknown model profile 'quick'; use fast, accurate, auto"):
        pick_profile("quick", "cpu")


def test_a_registry_wins_over_the_profile_and_the_environment_over_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("FINPULSE_REGISTRY", raising=False)
    monkeypatch.delenv("FINPULSE_PROFILE", raising=False)
    monkeypatch.delenv("FINPULSE_CONFIG", raising=False)
    assert chosen_registry(None, None, "cpu") == "default"
    assert chosen_registry(None, "accurate", "cpu") == "accurate"
    assert chosen_registry("my.json", "accurate", "cpu") == "my.json"
    monkeypatch.setenv("FINPULSE_PROFILE", "accurate")
    assert chosen_registry(None, None, "cpu") == "accurate"
    assert chosen_registry(None, "fast", "cpu") == "default"  # a flag beats the environment
    (tmp_path / "f.toml").write_text('[models]\nprofile = "fast"\n')
    monkeypatch.delenv("FINPULSE_PROFILE")
    monkeypatch.setenv("FINPULSE_CONFIG", str(tmp_path / "f.toml"))
    assert chosen_registry(None, None, "cuda") == "default"  # the settings file's profile


def test_the_profile_registry_sets_the_target_pass_unless_the_engine_setting_does():
    from finpulse.models.engine.inference import Enricher
    from finpulse.pipeline.runtime.settings import InferenceSettings

    registry = load_registry("default")
    assert Enricher(registry, InferenceSettings()).target_policy == "multi"
    every = registry.model_copy(update={"target_pass": "all"})
    assert Enricher(every, InferenceSettings()).target_policy == "all"
    assert Enricher(every, InferenceSettings(target_pass="off")).target_policy == "off"
    with pytest.raises(ValueError, match="unknown target-pass policy"):
        Enricher(registry.model_copy(update={"target_pass": "some"}), InferenceSettings())


def test_every_command_that_loads_or_starts_models_takes_a_profile(monkeypatch):
    """Commands that start pipelines (demo, chaos, realtext-eval, ...) pass --profile on through
    FINPULSE_PROFILE, which their own model loads and their child processes read."""
    import click
    from click.testing import CliRunner

    from finpulse.pipeline.cli.main import main
    from finpulse.pipeline.cli.options import profile_env_option

    def has_profile(path: str) -> bool:
        cmd: click.Command = main
        for part in path.split():
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[part]
        return any("--profile" in p.opts for p in cmd.params)

    for path in ("stream", "backfill", "rescore", "bench", "bench-int8", "eval", "demo", "chaos", "realtext-eval",
                 "bench-stories", "bench-precision"):
        assert has_profile(path), path

    @click.command()
    @profile_env_option()
    def probe() -> None:
        click.echo(load_registry().sentiment.version)

    monkeypatch.delenv("FINPULSE_REGISTRY", raising=False)
    monkeypatch.setenv("FINPULSE_PROFILE", "fast")
    fast = load_registry("default").sentiment.version
    accurate = load_registry("accurate").sentiment.version
    assert fast != accurate
    assert CliRunner().invoke(probe, []).output.strip() == fast  # no flag: the environment's profile
    out = CliRunner().invoke(probe, ["--profile", "accurate"])
    assert out.output.strip() == accurate, out.output
