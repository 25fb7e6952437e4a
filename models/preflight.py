"""Start-up check of the model registry and artifacts, so a broken model fails before any input is read."""

from __future__ import annotations

from finpulse.models.artifact import ADAPTER_FILE, HEADS_FILE, ModelLoadError, read_config, resolve_base
from finpulse.models.registry import ModelRegistry, load_registry


def check_models(registry_path: str | None = None) -> ModelRegistry:
    """Validate registry, configs and safetensors headers without building the models (fast)."""
    from pathlib import Path

    from safetensors import safe_open

    registry = load_registry(registry_path)
    for name, tm in registry.tasks.items():
        config = read_config(tm.artifact_path)
        if name not in {t.name for t in config.tasks}:
            raise ModelLoadError(f"registry task '{name}' points at {tm.artifact_path}, which has no '{name}' head")
        files = [HEADS_FILE] + ([ADAPTER_FILE] if config.lora.rank else [])
        for f in files:
            path = tm.artifact_path / f
            if not path.is_file():
                raise ModelLoadError(f"model artifact is missing {path}; restore it from git or retrain with `finpulse train`")
            try:
                with safe_open(str(path), framework="pt") as fh:
                    list(fh.keys())
            except Exception as exc:  # noqa: BLE001
                raise ModelLoadError(f"{path} is corrupt or not a safetensors file: {exc}") from None
        base = resolve_base(config.base)
        if Path(base).exists() and not (Path(base) / "config.json").is_file():
            raise ModelLoadError(f"base encoder folder {base} has no config.json")
    return registry
