"""Fine-tuning: one loop for one task or several on a shared encoder (LoRA or full).

Batches are single-task; tasks are interleaved at random so the shared encoder sees all of
them every epoch. The checkpoint is chosen on data never trained on: by default each task's held-out
split (a seeded stratified split of each classification file, the given dev files for NER); with
`select_on`, a selection split carved from the named tasks' training part, so that the held-out
splits stay unread until the model is scored. Distillation reads a teacher artifact's logits or a
folder of precomputed soft labels (`finpulse distill label`).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, Field
from torch import nn

from finpulse.models.artifacts.artifact import (
    PACKAGE_BASE,
    ArtifactConfig,
    LoraConfig,
    TaskConfig,
    load_encoder,
    save_artifact,
)
from finpulse.models.artifacts.lora import add_lora
from finpulse.models.data import holdout_split, normalise, read_classification_csv, read_task_file, read_texts
from finpulse.models.encoding import IGNORE, Encoded, collate, encode_sentences, encode_texts
from finpulse.models.engine.targets import target_rows
from finpulse.models.evaluation.evaluate import evaluate, headline, predict_logits
from finpulse.models.network import MultiTaskModel
from finpulse.models.tasks import ENTITY_TARGET, TaskKind, TaskSpec, get_task


class TaskData(BaseModel):
    task: str
    train: list[Path]
    dev: list[Path] = Field(default_factory=list)  # given dev files; if empty, hold out val_fraction of train
    repeat: int = 1  # oversampling: how many times each example is seen per epoch
    # artifacts whose heads for this task give soft targets, or folders of `finpulse distill label` soft
    # labels (their texts join the unlabelled ones); several teachers give the mean of their logits
    teachers: list[Path] = Field(default_factory=list)
    unlabeled: list[Path] = Field(default_factory=list)  # CSVs with a text column: extra texts the teacher labels


class TrainConfig(BaseModel):
    tasks: list[TaskData]
    out: Path
    base: str = PACKAGE_BASE
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3  # LoRA matrices (or the whole encoder when lora_rank == 0; use ~5e-5 then)
    head_lr: float = 2e-3
    warmup: float = 0.06
    weight_decay: float = 0.01
    lora_rank: int = 64
    lora_alpha: float = 128.0
    lora_dropout: float = 0.05
    max_length: int = 128
    layers: int | None = None  # keep only the base's bottom N layers (see artifact.keep_layers)
    val_fraction: float = 0.1
    seed: int = 13
    # tasks whose checkpoint choice uses a selection split carved from their training part (seed + 1):
    # then no held-out split is scored while training. Empty: each task's held-out split chooses.
    select_on: list[str] = Field(default_factory=list)
    class_weight: Literal["none", "sqrt"] = "sqrt"
    label_smoothing: float = 0.0
    schedule: Literal["linear", "cosine"] = "linear"  # decay after warm-up
    kd_alpha: float = 0.5  # with a teacher: weight of the distillation term on labelled examples
    kd_temperature: float = 2.0
    device: str = "auto"
    precision: str = "auto"  # bf16 autocast on CUDA and on CPUs with native bf16 (AMX); fp32 otherwise
    version: str = "dev"
    progress: bool = True


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def class_weights(labels: list[int], n_classes: int, mode: str) -> torch.Tensor | None:
    """sqrt inverse frequency: lifts rare classes (macro-F1) without letting them dominate."""
    if mode == "none":
        return None
    counts = torch.bincount(torch.tensor(labels), minlength=n_classes).float().clamp(min=1)
    w = (counts.max() / counts).sqrt()
    return w / w.mean()


def partial_label_loss(logits: torch.Tensor, labels: torch.Tensor, allowed_extra: torch.Tensor) -> torch.Tensor:
    """Token cross-entropy where an "O" from a dataset that never annotates type X may also be X.

    loss = -log sum_{allowed} p(label); with one allowed label this is plain cross-entropy.
    """
    valid = labels != IGNORE
    gold = labels.clamp(min=0)
    allowed = torch.nn.functional.one_hot(gold, logits.size(-1)).bool()
    is_o = (gold == 0).unsqueeze(-1)
    allowed = allowed | (is_o & allowed_extra.unsqueeze(1))
    logits = logits.float()
    log_z = torch.logsumexp(logits, -1)
    log_allowed = torch.logsumexp(logits.masked_fill(~allowed, float("-inf")), -1)
    per_token = (log_z - log_allowed) * valid
    return per_token.sum() / valid.sum().clamp(min=1)


def lr_factor(step: int, total: int, warm: int, schedule: str) -> float:
    """Linear warm-up to 1, then linear or cosine decay to 0 at `total`."""
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None, label_smoothing: float,
                  teacher_logits: torch.Tensor | None = None, kd_alpha: float = 0.5, temperature: float = 2.0) -> torch.Tensor:
    """Cross-entropy on labelled rows; with teacher logits, plus T^2-scaled KL to the teacher's softened output.

    Per example: labelled rows (1 - alpha) * CE + alpha * KD, unlabelled rows (label IGNORE) KD only;
    the batch loss is the mean over examples (CE keeps its class weighting among labelled rows).
    """
    logits = logits.float()
    labelled = labels != IGNORE
    n, n_lab = labels.numel(), int(labelled.sum())
    ce = nn.functional.cross_entropy(logits[labelled], labels[labelled], weight=weight, label_smoothing=label_smoothing) if n_lab else logits.sum() * 0.0
    if teacher_logits is None:
        if n_lab < n:
            raise ValueError("unlabelled examples need teacher logits")
        return ce
    t = temperature
    kd = nn.functional.kl_div(
        nn.functional.log_softmax(logits / t, -1), nn.functional.log_softmax(teacher_logits.float() / t, -1),
        reduction="none", log_target=True,
    ).sum(-1) * (t * t)
    loss = (n - n_lab) / n * kd[~labelled].mean() if n_lab < n else ce * 0.0
    if n_lab:
        loss = loss + n_lab / n * ((1.0 - kd_alpha) * ce + kd_alpha * kd[labelled].mean())
    return loss


def _heldout_texts(cfg: TrainConfig) -> set[str]:
    """Normalised texts of every task's held-out rows (its given dev files or its split)."""
    from finpulse.models.training.soft_labels import file_texts

    out: set[str] = set()
    for td in cfg.tasks:
        spec = get_task(td.task)
        if spec.kind is not TaskKind.SEQUENCE:  # token tasks: the dev sentences, as distill label reads them
            out |= {normalise(t) for f in td.dev for t in file_texts(f)}
            continue
        if spec.name == ENTITY_TARGET.name:  # entity JSONL split by document (models/engine/targets.py)
            out |= {normalise(r.text) for r in target_rows(td.train, "heldout")}
        elif td.dev:
            out |= {normalise(r.text) for f in td.dev for r in read_classification_csv(f, spec)}
        else:
            rows = [r for f in td.train for r in read_classification_csv(f, spec)]
            _, held = holdout_split(rows, fraction=cfg.val_fraction, seed=cfg.seed)
            out |= {normalise(rows[i].text) for i in held}
    return out


def _add_teacher_targets(spec: TaskSpec, train_rows: list, enc: list[Encoded], td: TaskData, dev: dict[str, list],
                         cfg: TrainConfig, tokenizer, log) -> list[Encoded]:
    """Attach the teachers' mean logits to every training example and append the unlabelled texts (teacher-labelled).

    Each teacher uses its own tokenizer and window, so it may sit on another base encoder. Unlabelled
    texts equal (case and spacing aside) to a training text or to a held-out text of any task are
    dropped, so held-out rows never reach training, not even unlabelled (e.g. topic texts as
    sentiment transfer data leave the topic hold-out out).
    """
    from finpulse.models.artifacts.artifact import load_artifact

    if spec.kind is not TaskKind.SEQUENCE:
        raise ValueError(f"{spec.name}: distillation is implemented for sequence tasks only")
    from finpulse.models.engine.inference import use_bf16

    device = pick_device(cfg.device)
    bf16 = use_bf16(cfg.precision, str(device))
    seen = _heldout_texts(cfg) | {normalise(r.text) for rows in dev.values() for r in rows} | {normalise(r.text) for r in train_rows}
    soft = {path: _soft_label_folder(path, spec) for path in td.teachers if _is_soft_label_folder(path)}
    extra: list[str] = []
    candidates = [t for f in td.unlabeled for t in read_texts(f)] + [t for rows in soft.values() for t in rows]
    for text in candidates:
        key = normalise(text)
        if key not in seen:
            seen.add(key)
            extra.append(text)
    texts = [r.text for r in train_rows] + extra
    total: torch.Tensor | None = None
    for path in td.teachers:
        if path in soft:
            logits = _look_up(soft[path], texts, path)
            total = logits if total is None else total + logits
            log(f"{spec.name}: teacher {path} (soft labels): {len(soft[path])} texts")
            continue
        teacher = load_artifact(path, device)
        if spec.name not in teacher.model.tasks or list(teacher.model.tasks[spec.name].labels) != list(spec.labels):
            raise ValueError(f"teacher {path} has no {spec.name} head with labels {list(spec.labels)}")
        t_enc = encode_texts(teacher.tokenizer, texts, [0] * len(texts), teacher.config.max_length)
        logits = torch.stack(predict_logits(teacher.model, t_enc, spec, teacher.tokenizer.pad_token_id, device,
                                            bf16=bf16, progress=f"{spec.name}: teacher {path.name} labels"))
        total = logits if total is None else total + logits
        for name, rows in dev.items():
            score = evaluate(teacher.model, teacher.tokenizer, rows, spec, device, bf16=bf16)
            log(f"{spec.name}: teacher {path} on {name}: " + json.dumps({k: score[k] for k in ("accuracy", "macro_f1")}))
        del teacher
    if total is None:
        raise ValueError(f"{spec.name}: distillation needs at least one teacher")
    mean = (total / len(td.teachers)).tolist()
    out = [Encoded(e.input_ids, e.label, soft=tuple(lg)) for e, lg in zip(enc, mean, strict=False)]
    u_enc = encode_texts(tokenizer, extra, [IGNORE] * len(extra), cfg.max_length)
    out += [Encoded(e.input_ids, IGNORE, soft=tuple(lg)) for e, lg in zip(u_enc, mean[len(enc):], strict=False)]
    log(f"{spec.name}: distilling from {len(td.teachers)} teacher(s) (alpha {cfg.kd_alpha}, T {cfg.kd_temperature}), "
        f"{len(extra)} unlabelled texts added")
    return out


def _is_soft_label_folder(path: Path) -> bool:
    from finpulse.models.training.soft_labels import MANIFEST

    return (Path(path) / MANIFEST).is_file()


def _soft_label_folder(path: Path, spec: TaskSpec) -> dict[str, list[float]]:
    """Text -> teacher logits of a `finpulse distill label` folder, without per-company held-out documents.

    Entity-set documents (SEntFiN, FinEntity) are in that corpus; those the per-company split holds out
    (by document, data.HOLDOUT_SEED) are dropped here, so per-company held-out figures of a model on this
    encoder stay unseen. Other tasks' held-out rows are dropped by the caller's `seen` filter."""
    from finpulse.models.data import HOLDOUT_FRACTION, HOLDOUT_SEED, document_split
    from finpulse.models.training.soft_labels import read_manifest, read_soft_labels

    manifest = read_manifest(path) or {}
    if list(manifest.get("labels", [])) != list(spec.labels):
        raise ValueError(f"{path}: soft labels in order {manifest.get('labels')}, "
                         f"the {spec.name} task has {list(spec.labels)}")
    rows = read_soft_labels(path)
    documents = [i for i, row in enumerate(rows) if row["source"].endswith(".jsonl")]
    _, held = document_split([rows[i]["text"] for i in documents], HOLDOUT_FRACTION, HOLDOUT_SEED)
    dropped = {documents[j] for j in held}
    return {row["text"]: row["logits"] for i, row in enumerate(rows) if i not in dropped}


def soft_label_record(cfg: TrainConfig) -> dict:
    """`{"soft_labels": {folder: teacher, texts, fingerprint}}` for the soft-label folders among the teachers
    (empty without any): the artifact's record names the teacher even after the folder is gone."""
    from finpulse.models.training.soft_labels import read_manifest, read_soft_labels

    out: dict[str, dict] = {}
    for td in cfg.tasks:
        for path in td.teachers:
            if _is_soft_label_folder(path):
                m = read_manifest(path) or {}
                out[str(path)] = {"task": td.task, **{k: m.get(k) for k in ("teacher", "texts", "fingerprint")},
                                  "sources": sorted({r["source"] for r in read_soft_labels(path)})}
    return {"soft_labels": out} if out else {}


def _look_up(soft: dict[str, list[float]], texts: list[str], path: Path) -> torch.Tensor:
    """The folder's logits for `texts` (matched after normalisation); every text must be there."""
    by_key = {normalise(t): lg for t, lg in soft.items()}
    missing = [t for t in texts if normalise(t) not in by_key]
    if missing:
        raise ValueError(f"{path}: {len(missing)} training texts have no soft label (e.g. {missing[0][:60]!r}); "
                         f"label every training file with `finpulse distill label --out {path}` first")
    return torch.tensor([by_key[normalise(t)] for t in texts], dtype=torch.float32)


class _TaskState:
    """Encoded data and loss for one task during training."""

    def __init__(self, spec: TaskSpec, train: list[Encoded], dev: dict[str, list], weights: torch.Tensor | None, repeat: int = 1):
        self.spec = spec
        self.train = train
        self.repeat = repeat
        self.dev = dev  # name -> raw labelled rows for evaluation
        self.weights = weights


def _load_task(td: TaskData, cfg: TrainConfig, tokenizer, log) -> _TaskState:
    spec = get_task(td.task)
    train_rows: list = []
    dev: dict[str, list] = {}
    if spec.name == ENTITY_TARGET.name:  # entity JSONL files, split by document (models/engine/targets.py)
        train_rows = target_rows(td.train, "fit")
        dev["select"] = target_rows(td.train, "select")
    elif td.dev:
        train_rows = [r for f in td.train for r in read_task_file(f, spec)]
        if not cfg.select_on:
            for f in td.dev:
                dev[Path(f).stem] = read_task_file(f, spec)
    else:
        if spec.kind is not TaskKind.SEQUENCE:
            raise ValueError(f"{spec.name}: give --dev files; token tasks are not split automatically")
        rows: list = [r for f in td.train for r in read_task_file(f, spec)]
        tr, held = holdout_split(rows, fraction=cfg.val_fraction, seed=cfg.seed)
        train_rows = [rows[i] for i in tr]
        if spec.name in cfg.select_on:  # choose on a split of the training part; the held-out rows stay unread
            fit, select = holdout_split(train_rows, fraction=cfg.val_fraction, seed=cfg.seed + 1)
            dev["select"] = [train_rows[i] for i in select]
            train_rows = [train_rows[i] for i in fit]
        elif not cfg.select_on:
            dev["heldout"] = [rows[i] for i in held]
    if spec.kind is TaskKind.SEQUENCE:
        enc = encode_texts(tokenizer, [r.text for r in train_rows], [r.label for r in train_rows], cfg.max_length)
        weights = class_weights([r.label for r in train_rows], len(spec.labels), cfg.class_weight)
        if td.unlabeled and not td.teachers:
            raise ValueError(f"{spec.name}: unlabelled texts need a teacher (TaskData.teachers)")
        if td.teachers:
            enc = _add_teacher_targets(spec, train_rows, enc, td, dev, cfg, tokenizer, log)
    else:
        if td.teachers or td.unlabeled:
            raise ValueError(f"{spec.name}: distillation is implemented for sequence tasks only")
        enc, _ = encode_sentences(tokenizer, train_rows, spec.labels, cfg.max_length)
        weights = None
    log(f"{spec.name}: {len(enc)} training examples, dev sets " + ", ".join(f"{k}={len(v)}" for k, v in dev.items()))
    return _TaskState(spec, enc, dev, weights, td.repeat)


def _epoch_batches(states: list[_TaskState], batch_size: int, rng: random.Random) -> list[tuple[int, list[int]]]:
    """Single-task batches of similar length (less padding), shuffled across tasks."""
    plan: list[tuple[int, list[int]]] = []
    for ti, st in enumerate(states):
        idx = list(range(len(st.train))) * st.repeat
        rng.shuffle(idx)
        chunk = batch_size * 50
        for c in range(0, len(idx), chunk):
            part = sorted(idx[c : c + chunk], key=lambda i: len(st.train[i].input_ids))
            plan.extend((ti, part[b : b + batch_size]) for b in range(0, len(part), batch_size))
    rng.shuffle(plan)
    return plan


def train(cfg: TrainConfig) -> dict:
    from tqdm import tqdm

    splittable = {td.task for td in cfg.tasks if get_task(td.task).kind is TaskKind.SEQUENCE and not td.dev}
    if set(cfg.select_on) - splittable:
        raise ValueError(f"select_on {sorted(set(cfg.select_on) - splittable)}: only a trained sequence task "
                         "without given dev files has a split to carve")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    encoder, tokenizer = load_encoder(cfg.base, layers=cfg.layers)
    states = [_load_task(td, cfg, tokenizer, log) for td in cfg.tasks]
    model = MultiTaskModel(encoder, [s.spec for s in states])
    if cfg.lora_rank > 0:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        add_lora(model.encoder, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
    model.to(device)
    enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [
            {"params": enc_params, "lr": cfg.lr},
            {"params": list(model.heads.parameters()), "lr": cfg.head_lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    rng = random.Random(cfg.seed)
    steps_per_epoch = sum(math.ceil(len(s.train) * s.repeat / cfg.batch_size) for s in states)
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(total * cfg.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warm, cfg.schedule))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"device {device}, {trainable:,} trainable parameters, {total} steps")
    from finpulse.models.engine.inference import use_bf16

    use_amp = use_bf16(cfg.precision, str(device))
    log(f"bf16 autocast: {'on' if use_amp else 'off'}")
    pad = tokenizer.pad_token_id
    best, history = -1.0, []
    teacher_record = soft_label_record(cfg)  # once: it reads every soft-label chunk
    started = time.time()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        plan = _epoch_batches(states, cfg.batch_size, rng)
        bar = tqdm(plan, desc=f"epoch {epoch}/{cfg.epochs}", disable=not cfg.progress, file=sys.stderr, mininterval=2)
        running = 0.0
        for step, (ti, idx) in enumerate(bar, start=1):
            st = states[ti]
            batch = collate([st.train[i] for i in idx], pad, len(st.spec.labels))
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(batch["input_ids"], batch["attention_mask"], [st.spec.name])[st.spec.name]
            if st.spec.kind is TaskKind.SEQUENCE:
                w = st.weights.to(device) if st.weights is not None else None
                loss = sequence_loss(logits, batch["labels"], w, cfg.label_smoothing, batch.get("teacher_logits"),
                                     cfg.kd_alpha, cfg.kd_temperature)
            else:
                loss = partial_label_loss(logits, batch["labels"], batch["allowed_extra"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running += loss.item() if step % 20 == 0 else 0.0
            if step % 100 == 0:
                bar.set_postfix(loss=f"{running / 5:.3f}")
                running = 0.0
        scores: dict[str, dict] = {}
        for st in states:
            for name, rows in st.dev.items():
                scores[f"{st.spec.name}/{name}"] = evaluate(model, tokenizer, rows, st.spec, device)
        # Selection: mean over tasks (those with a dev set) of each task's first dev set headline score.
        judged = [st for st in states if st.dev]
        sel = sum(headline(st.spec, scores[f"{st.spec.name}/{next(iter(st.dev))}"]) for st in judged) / len(judged)
        summary = {k: {m: v[m] for m in ("accuracy", "macro_f1", "precision", "recall", "f1") if m in v} for k, v in scores.items()}
        history.append({"epoch": epoch, "selection": round(sel, 4), "dev": summary, "elapsed_s": round(time.time() - started)})
        log(f"epoch {epoch}: selection {sel:.4f} " + json.dumps(summary))
        if sel > best:
            best = sel
            config = ArtifactConfig(
                version=cfg.version,
                base=cfg.base,
                max_length=cfg.max_length,
                layers=cfg.layers,
                tasks=[TaskConfig(name=s.spec.name, kind=s.spec.kind, labels=list(s.spec.labels)) for s in states],
                lora=LoraConfig(rank=cfg.lora_rank, alpha=cfg.lora_alpha) if cfg.lora_rank else LoraConfig(),
                training={**json.loads(cfg.model_dump_json(exclude={"progress"})), "best_epoch": epoch,
                          **teacher_record},
                metrics=scores,
            )
            save_artifact(cfg.out, model, config, full_encoder=cfg.lora_rank == 0)
    result = {"best_selection": round(best, 4), "history": history, "out": str(cfg.out)}
    (Path(cfg.out) / "training_history.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
