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
