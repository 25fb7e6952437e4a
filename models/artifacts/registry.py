"""The model registry: which artifact serves each task, with its labels, window and version.

One JSON file. Two are shipped, one per profile: `fast` (models/registry.json, "default": the
MiniLM shared encoder, its span head and the 3-layer target model) and `accurate`
(models/registry-accurate.json: mpnet sentiment, and every company mention re-read by an mpnet
target model). `--profile auto` (the default) takes accurate on a GPU and fast on a CPU, where
mpnet costs several times the compute per post (the profiles' cards: models/cards/profiles.md).
An explicit registry (FINPULSE_REGISTRY or --registry: a file, or a shipped name) wins over the profile.
Tasks that name the same artifact share one encoder pass at inference.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from finpulse.models.artifacts.artifact import ModelLoadError
from finpulse.models.artifacts.profiles import chosen_registry

DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "registry.json"
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
    # Per-company sentiment (a span head). Optional so registries written before it still load;
    # it must sit in the same artifact as `ner`, whose ORG spans it scores in the same pass.
    entity_sentiment: TaskModel | None = None
    # Per-company sentiment re-read with the company marked in the input (models/engine/targets.py): a second,
    # short pass of its own small model for texts naming several companies. Optional, like the span head.
    entity_target: TaskModel | None = None
    # Which texts' mentions the entity_target model re-reads (models/engine/targets.py POLICIES): the
    # profile's choice; None leaves it to the engine setting (multi). An explicit setting wins.
    target_pass: str | None = None

    def task(self, name: str) -> TaskModel:
        found = getattr(self, name, None)
        if found is None:
            raise ModelLoadError(f"the registry has no {name!r} model")
        return found

    @property
    def tasks(self) -> dict[str, TaskModel]:
        out = {"sentiment": self.sentiment, "topic": self.topic, "ner": self.ner}
        if self.entity_sentiment is not None:
            out["entity_sentiment"] = self.entity_sentiment
        return out

    @property
    def all_tasks(self) -> dict[str, TaskModel]:
        """`tasks` and the target model: everything whose version shapes an enriched row."""
        return {**self.tasks, **({"entity_target": self.entity_target} if self.entity_target else {})}

    @property
    def model_version(self) -> str:
        """What enriched rows record: one version if all tasks share it, else one per task."""
        versions = {t.version for t in self.all_tasks.values()}
        if len(versions) == 1:
            return versions.pop()
        return ",".join(f"{name}={t.version}" for name, t in self.all_tasks.items())


def load_registry(path: str | Path | None = None) -> ModelRegistry:
    """Load the registry: explicit path or shipped name ("default", "accurate"), else $FINPULSE_REGISTRY,
    else the profile's (chosen_registry)."""
    chosen = chosen_registry(str(path) if path else None)
    path = SHIPPED.get(chosen, Path(chosen))
    if not path.is_file():
        raise ModelLoadError(f"model registry {path} not found; pass --registry or restore models/registry.json")
    try:
        reg = ModelRegistry.model_validate(json.loads(path.read_text()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model registry {path} is invalid: {exc}") from None
    for t in reg.all_tasks.values():
        p = Path(t.artifact)
        t.artifact_path = p if p.is_absolute() else (path.parent / p).resolve()
    if reg.entity_sentiment is not None and reg.entity_sentiment.artifact_path != reg.ner.artifact_path:
        raise ModelLoadError(f"model registry {path}: entity_sentiment must use the ner artifact "
                             "(it scores the ORG spans of the same pass)")
    return reg


def registry_for_artifact(path: str | Path) -> ModelRegistry:
    """A registry serving every task of one artifact folder (`finpulse eval --model DIR`)."""
    from finpulse.models.artifacts.artifact import read_config

    path = Path(path).resolve()
    cfg = read_config(path)
    tasks = {t.name: TaskModel(artifact=str(path), labels=list(t.labels), max_length=cfg.max_length,
                               version=cfg.version, artifact_path=path) for t in cfg.tasks}
    missing = {"sentiment", "topic", "ner"} - set(tasks)
    if missing:
        raise ModelLoadError(f"artifact {path} lacks the {', '.join(sorted(missing))} head(s) the engine needs")
    return ModelRegistry.model_validate(tasks)


def per_company_registry(artifact: str | Path) -> ModelRegistry:
    """What the pipeline scores companies with: the artifact's span head, plus the default registry's target
    model when that registry takes its NER (and so its span head) from this artifact."""
    reg = registry_for_artifact(artifact)
    shipped = load_registry(DEFAULT_REGISTRY)
    if shipped.entity_target is not None and shipped.ner.artifact_path == reg.ner.artifact_path:
        reg.entity_target = shipped.entity_target
    return reg
