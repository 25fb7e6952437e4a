"""The on-disk model artifact: a small folder on top of a base encoder.

    finpulse_model.json   ArtifactConfig (tasks, labels, base, LoRA shape, version, metrics)
    adapter.safetensors   LoRA A/B matrices for the encoder (fp16)
    heads.safetensors     one linear head per task (fp32)

Only safetensors are read and `trust_remote_code` is never set, so loading cannot run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from pydantic import BaseModel, Field

from finpulse.models.artifacts.bases import MINILM_BASE, BaseUnavailable, resolve_package_base
from finpulse.models.artifacts.lora import DEFAULT_TARGETS, add_lora, lora_state_dict, merge_lora
from finpulse.models.network import MultiTaskModel
from finpulse.models.tasks import TaskKind, TaskSpec
from finpulse.schemas.errors import FinpulseError

CONFIG_FILE = "finpulse_model.json"
ADAPTER_FILE = "adapter.safetensors"
HEADS_FILE = "heads.safetensors"
ENCODER_FILE = "encoder.safetensors"  # only for full fine-tunes (too big to commit)
PACKAGE_BASE = MINILM_BASE


class ModelLoadError(FinpulseError, RuntimeError):
    """A model artifact or base encoder is missing or unreadable; the message says how to fix it."""


class TaskConfig(BaseModel):
    name: str
    kind: TaskKind
    labels: list[str]

    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.kind, tuple(self.labels))


class LoraConfig(BaseModel):
    rank: int = 0  # 0 = the encoder was not adapted (heads only)
    alpha: float = 0.0
    targets: str = DEFAULT_TARGETS


class ArtifactConfig(BaseModel):
    format: str = "finpulse-multitask/1"
    version: str
    base: str = PACKAGE_BASE
    max_length: int = 128
    layers: int | None = None  # encoder layers kept from the bottom (a shallower, cheaper model); None = all
    tasks: list[TaskConfig]
    lora: LoraConfig = Field(default_factory=LoraConfig)
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


def resolve_base(base: str) -> str:
    """Turn the config's base reference into something `from_pretrained` takes, offline first."""
    try:
        path = resolve_package_base(base)
    except BaseUnavailable as exc:
        raise ModelLoadError(str(exc)) from None
    return str(path) if path else base  # else a local directory or a Hugging Face hub id


def load_encoder(base: str, dtype: torch.dtype = torch.float32,
                 layers: int | None = None) -> tuple[torch.nn.Module, Any]:
    """The base encoder and its tokenizer, keeping only its bottom `layers` transformer layers if given."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-worker "Loading weights" bar is noise in pipeline logs
    where = resolve_base(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, use_fast=True)
        try:
            encoder = AutoModel.from_pretrained(where, use_safetensors=True, attn_implementation="sdpa", dtype=dtype)
        except ValueError as exc:  # architectures without an SDPA kernel (e.g. MPNet) still load, just slower
            if "attention implementation" not in str(exc):
                raise
            encoder = AutoModel.from_pretrained(where, use_safetensors=True, attn_implementation="eager", dtype=dtype)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot load base encoder {base!r} ({where}): {exc}. Use a local path or a hub id that is in your cache."
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"base {base!r} has no fast tokenizer; finpulse needs character offsets")
    if layers is not None:
        keep_layers(encoder, layers)
    return encoder, tokenizer


def keep_layers(encoder: torch.nn.Module, n: int) -> None:
    """Drop all but the bottom `n` transformer layers, in place.

    Why: a model that reads short inputs for one narrow job (the target-marked per-company pass) keeps
    most of its accuracy with half the depth at half the cost; the lower layers of a sentence encoder
    carry the lexical and local context that job needs."""
    body: Any = getattr(encoder, "encoder", None)
    stack = getattr(body, "layer", None)
    if not isinstance(stack, torch.nn.ModuleList):
        raise ModelLoadError(f"cannot keep {n} layers of a {type(encoder).__name__}: no encoder.layer list")
    if not 0 < n <= len(stack):
        raise ModelLoadError(f"cannot keep {n} layers: the base has {len(stack)}")
    body.layer = torch.nn.ModuleList(list(stack)[:n])
    cast(Any, encoder).config.num_hidden_layers = n


def save_artifact(out: str | Path, model: MultiTaskModel, config: ArtifactConfig, full_encoder: bool = False) -> Path:
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if full_encoder:
        save_file({k: v.contiguous().cpu() for k, v in model.encoder.state_dict().items()}, str(out / ENCODER_FILE))
    adapter = {k: v.to(torch.float16).contiguous().cpu() for k, v in lora_state_dict(model.encoder).items()}
    if adapter:
        save_file(adapter, str(out / ADAPTER_FILE))
    heads = {k: v.detach().float().contiguous().cpu() for k, v in model.heads.state_dict().items()}
    save_file(heads, str(out / HEADS_FILE))
    (out / CONFIG_FILE).write_text(config.model_dump_json(indent=2) + "\n")
    return out


def read_config(path: str | Path) -> ArtifactConfig:
    path = Path(path)
    cfg = path / CONFIG_FILE
    if not cfg.is_file():
        raise ModelLoadError(f"no model artifact at {path} (missing {CONFIG_FILE}); run `finpulse train` or point the registry elsewhere")
    try:
        return ArtifactConfig.model_validate(json.loads(cfg.read_text()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{cfg} is not a valid model config: {exc}") from None


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelLoadError(f"model artifact is missing {path}; restore it from git or retrain with `finpulse train`")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for truncated/corrupt files
        raise ModelLoadError(f"{path} is corrupt or not a safetensors file: {exc}") from None


@dataclass
class LoadedModel:
    model: MultiTaskModel
    tokenizer: Any
    config: ArtifactConfig
    path: Path


def load_artifact(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load base + LoRA + heads, merge the LoRA into the weights and return an eval-mode model."""
    path = Path(path)
    config = read_config(path)
    encoder, tokenizer = load_encoder(config.base, layers=config.layers)
    model = MultiTaskModel(encoder, [t.spec() for t in config.tasks])
    if (path / ENCODER_FILE).is_file():
        model.encoder.load_state_dict(_read_tensors(path / ENCODER_FILE))
    if config.lora.rank:
        add_lora(model.encoder, config.lora.rank, config.lora.alpha, targets=config.lora.targets)
        adapter = _read_tensors(path / ADAPTER_FILE)
        missing = set(lora_state_dict(model.encoder)) - set(adapter)
        if missing:
            raise ModelLoadError(f"{path / ADAPTER_FILE} lacks {len(missing)} LoRA tensors (e.g. {sorted(missing)[0]}); retrain")
        model.encoder.load_state_dict(adapter, strict=False)
        merge_lora(model.encoder)
    heads = _read_tensors(path / HEADS_FILE)
    try:
        model.heads.load_state_dict(heads)
    except RuntimeError as exc:
        raise ModelLoadError(f"{path / HEADS_FILE} does not fit the tasks in {CONFIG_FILE}: {exc}") from None
    model.eval().to(device)
    return LoadedModel(model, tokenizer, config, path)
