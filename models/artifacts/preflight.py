"""Start-up check of the model registry and artifacts, so a broken model fails before any input is read."""

from __future__ import annotations

import json
from pathlib import Path

from finpulse.models.artifacts.artifact import (
    ADAPTER_FILE,
    CONFIG_FILE,
    HEADS_FILE,
    ModelLoadError,
    read_config,
    resolve_base,
)
from finpulse.models.artifacts.registry import ModelRegistry, load_registry


def check_models(registry_path: str | None = None) -> ModelRegistry:
    """Validate registry, configs, tensor names and shapes, and the base encoder without building the models (fast)."""
    registry = load_registry(registry_path)
    for name, tm in registry.all_tasks.items():
        config = read_config(tm.artifact_path)
        task = next((t for t in config.tasks if t.name == name), None)
        if task is None:
            raise ModelLoadError(f"registry task '{name}' points at {tm.artifact_path}, which has no '{name}' head")
        if list(task.labels) != list(tm.labels):
            raise ModelLoadError(f"registry labels for '{name}' differ from those of {tm.artifact_path / CONFIG_FILE}; "
                                 f"fix models/registry.json or retrain")
        hidden = _base_hidden_size(config.base)
        heads = _shapes(tm.artifact_path / HEADS_FILE)
        if task.kind.value == "span":  # the span head's tensor names and shapes come from its module
            want_span = _span_head_shapes(hidden, len(task.labels)) if hidden else {}
            for key, span_shape in want_span.items():
                if heads.get(f"{name}.{key}") != span_shape:
                    found = heads.get(f"{name}.{key}")
                    raise ModelLoadError(f"{tm.artifact_path / HEADS_FILE}: {name}.{key} is {found}, "
                                         f"expected {span_shape}; "
                                         f"retrain the entity_sentiment head or restore the artifact")
            continue
        want = {f"{name}.weight": [len(task.labels), hidden] if hidden else None, f"{name}.bias": [len(task.labels)]}
        for key, shape in want.items():
            if key not in heads:
                raise ModelLoadError(f"{tm.artifact_path / HEADS_FILE} has no tensor {key}; retrain or restore the artifact")
            if shape is not None and heads[key] != shape:
                raise ModelLoadError(f"{tm.artifact_path / HEADS_FILE}: {key} has shape {heads[key]}, expected {shape} "
                                     f"({len(task.labels)} labels x hidden size {hidden}); the heads do not fit this config")
        if config.lora.rank:
            adapter = _shapes(tm.artifact_path / ADAPTER_FILE)
            wrong = [k for k, shp in adapter.items() if (k.endswith("lora_A") and shp[0] != config.lora.rank)
                     or (k.endswith("lora_B") and shp[-1] != config.lora.rank)]
            if not adapter or wrong:
                raise ModelLoadError(f"{tm.artifact_path / ADAPTER_FILE} does not match LoRA rank {config.lora.rank} in "
                                     f"{CONFIG_FILE} ({len(wrong)} tensor(s) of another rank, {len(adapter)} in all)")
    return registry


def _span_head_shapes(hidden: int, n_labels: int) -> dict[str, list[int]]:
    from finpulse.models.spans import SpanSentimentHead

    return {k: list(v.shape) for k, v in SpanSentimentHead(hidden, n_labels).state_dict().items()}


def _shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header; a clear error if missing, truncated or not safetensors."""
    from safetensors import safe_open

    if not path.is_file():
        raise ModelLoadError(f"model artifact is missing {path}; restore it from git or retrain with `finpulse train`")
    try:
        with safe_open(str(path), framework="pt") as fh:
            # safe_open is not a dict: it has keys() but cannot be iterated
            return {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        raise ModelLoadError(f"{path} is corrupt or not a safetensors file: {exc}") from None


def _base_hidden_size(base: str) -> int | None:
    """The base encoder's hidden size if it is a local folder (None for a hub id: checked at load).

    Only safetensors weights are accepted: a folder with just pytorch_model.bin (a pickle, which
    can run code when loaded) is refused here rather than at load time.
    """
    folder = Path(resolve_base(base))
    if not folder.exists():
        return None
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"base encoder folder {folder} has no config.json")
    if not any(folder.glob("*.safetensors")):
        raise ModelLoadError(f"base encoder folder {folder} has no .safetensors weights; finpulse loads safetensors only "
                             f"(never pickled .bin files)")
    try:
        return int(json.loads(config.read_text())["hidden_size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{config} is not a valid encoder config: {exc}") from None
