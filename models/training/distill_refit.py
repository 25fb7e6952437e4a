"""Refit the default sentiment head on the frozen encoder with teacher soft labels and LF labels added.

Why: issue #27. The head refit of models/training/head_refit.py learnt from TFNS and unanimous news
documents only; the accurate profile (the teacher) reads more texts right, and the labelling
functions (models/training/labelling.py) label texts no person labelled. A head-only refit cannot
change topic, NER or per-company sentiment (they read the same frozen encoder), and costs seconds
once the pooled features are cached, so several recipes can be compared on a 2-core CPU.

Data (never a held-out row, never a dev row, never a probe):
* TFNS training rows, minus the held-out split (data.holdout_split) and minus a dev split carved from
  the training rows with the same function (seed 14); SEntFiN and FinEntity documents whose entities
  all agree, minus their held-out documents and a dev carve of the rest;
* teacher logits (`finpulse distill label`) for whichever of those texts the teacher has labelled
  (distillation: KL at temperature 2 beside the cross-entropy, weight `kd_alpha`);
* unlabelled texts (TFN topic texts, the entity sets' other texts, NER sentences) that the LF vote
  labels, with cross-entropy weight `lf_weight`.
Recipes (lf_weight x kd_alpha) are compared on the two dev splits (mean macro-F1); the chosen one is
scored on the held-out rows against the current head. Nothing is written into models/default here:
`--out DIR` writes a candidate artifact (a copy of the default with the new head) to be probed and
scored before anyone adopts it.

    python -m finpulse.models.training.distill_refit --data ../shared/data \
        --soft-labels /tmp/finpulse-distill/accurate --cache /tmp/finpulse-refit --out /tmp/finpulse-refit/candidate
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from finpulse.models.data import normalise, read_classification_csv
from finpulse.models.evaluation.metrics import classification_report
from finpulse.models.spans import read_entity_jsonl
from finpulse.models.tasks import SENTIMENT
from finpulse.models.training.head_refit import (
    NEWS_FILES,
    balanced_weights,
    unanimous_label,
    warm_head,
    window_features,
)
from finpulse.models.training.labelling import ABSTAIN, UNLABELLED_FILES, apply_lfs, dev_split, vote
from finpulse.models.training.soft_labels import corpus, read_soft_labels

DEV_SEED = 14


def text_features(loaded, texts: list[str], bf16: bool, cache: Path, name: str) -> torch.Tensor:
    """One pooled vector per text (the mean of its windows' vectors), cached on disk.

    The cache key holds the artifact's version and a hash of the texts, so another model or edited
    data is computed afresh instead of silently reusing features of something else."""
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
    version = re.sub(r"[^A-Za-z0-9._-]", "_", str(loaded.config.version))
    path = cache / f"{name}-{version}-{digest}.safetensors"  # safetensors, not torch.load: nothing unpickles
    if path.is_file():
        return load_file(str(path))["features"]
    x, idx = window_features(loaded.model, loaded.tokenizer, texts, bf16)
    owner = torch.tensor(idx)
    out = torch.zeros(len(texts), x.shape[1]).index_add_(0, owner, x)
    out /= torch.bincount(owner, minlength=len(texts)).clamp(min=1).unsqueeze(1).float()
    cache.mkdir(parents=True, exist_ok=True)
    save_file({"features": out.contiguous()}, str(path))
    return out


def fit_head(
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    soft: torch.Tensor,
    has_soft: torch.Tensor,
    init: torch.nn.Linear,
    kd_alpha: float,
    temperature: float = 2.0,
    epochs: int = 15,
    lr: float = 1e-3,
    seed: int = 13,
) -> torch.nn.Linear:
    """A linear head warm-started from `init`: per-row weighted cross-entropy (sqrt inverse-frequency class
    weights, as head_refit) plus, on rows with teacher logits, `kd_alpha` x T^2 x KL(teacher || student)."""
    head = warm_head(init, x.shape[1], seed)
    cw = balanced_weights(y)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = perm[i : i + 64]
            logits = head(x[idx])
            ce = torch.nn.functional.cross_entropy(logits, y[idx], weight=cw, reduction="none") * w[idx]
            loss = ce.sum() / (cw[y[idx]] * w[idx]).sum().clamp(min=1e-6)
            m = has_soft[idx]
            if kd_alpha > 0 and m.any():
                t = temperature
                kd = (
                    torch.nn.functional.kl_div(
                        torch.log_softmax(logits[m] / t, -1),
                        torch.log_softmax(soft[idx][m] / t, -1),
                        log_target=True,
                        reduction="batchmean",
                    )
                    * t
                    * t
                )
                loss = (1 - kd_alpha) * loss + kd_alpha * kd
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def scores(head: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        r = classification_report(y.tolist(), head(x).argmax(-1).tolist(), SENTIMENT.labels)
    return {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "n": len(y)}


def refit_candidates(model: Path, data: Path, soft_labels: Path | None = None,
                     cache: Path = Path("/tmp/finpulse-refit"),
                     out: Path | None = None, threads: int = 2, refit_on_dev: bool = False,
                     recipe: str | None = None) -> int:
    """Compare the refit recipes on the dev splits, score the chosen one on the held-out rows, print JSON lines.

    With `out`, the chosen head is written into a copy of `model` there (a candidate: nothing here
    changes the shipped artifact). `recipe` "LF_WEIGHT,KD_ALPHA" fits only that recipe.
    """
    from finpulse.models.artifacts.artifact import CONFIG_FILE, HEADS_FILE, load_artifact, read_config
    from finpulse.models.engine.inference import use_bf16

    torch.set_num_threads(threads)
    started = time.time()
    data, cache = Path(data), Path(cache)
    loaded = load_artifact(model, "cpu")
    bf16 = use_bf16("auto", "cpu")
    old = loaded.model.heads["sentiment"]
    assert isinstance(old, torch.nn.Linear)

    tfns = read_classification_csv(data / "tfns_sentiment_train.csv", SENTIMENT)
    fit_i, dev_i, held_i = dev_split(tfns, DEV_SEED)
    x_tfns = text_features(loaded, [r.text for r in tfns], bf16, cache, "tfns")
    y_tfns = torch.tensor([r.label for r in tfns])
    parts = {"fit": [("tfns", x_tfns[fit_i], y_tfns[fit_i], [tfns[i].text for i in fit_i])]}
    dev = {"tfns": (x_tfns[dev_i], y_tfns[dev_i])}
    dev_texts = {"tfns": [tfns[i].text for i in dev_i]}
    held = {"tfns": (x_tfns[held_i], y_tfns[held_i])}
    excluded = {normalise(tfns[i].text) for i in dev_i + held_i}
    for name in NEWS_FILES:
        docs = read_entity_jsonl(data / name)
        fit_d, dev_d, held_d = dev_split(docs, DEV_SEED)
        excluded |= {normalise(docs[i].text) for i in dev_d + held_d}
        x = text_features(loaded, [d.text for d in docs], bf16, cache, Path(name).stem)
        stem = Path(name).stem

        def take(
            ids: list[int], x: torch.Tensor = x, docs: list = docs
        ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
            keep = [i for i in ids if unanimous_label(docs[i]) is not None]
            return x[keep], torch.tensor([unanimous_label(docs[i]) for i in keep]), [docs[i].text for i in keep]

        xf, yf, tf = take(fit_d)
        parts["fit"].append((stem, xf, yf, tf))
        xd, yd, td = take(dev_d)
        dev[stem] = (xd, yd)
        dev_texts[stem] = td
        held[stem] = take(held_d)[:2]
    used = {normalise(t) for _, _, _, ts in parts["fit"] for t in ts}
    others = [t.text for t in corpus([data / n for n in UNLABELLED_FILES])]
    voted = [
        (t, v)
        for t, v in zip(others, (vote(r) for r in apply_lfs(others)), strict=True)
        if v != ABSTAIN and normalise(t) not in excluded and normalise(t) not in used
    ]
    x_lf = text_features(loaded, [t for t, _ in voted], bf16, cache, f"lf-{len(voted)}")
    soft_by_text: dict[str, list[float]] = {}
    if soft_labels:
        soft_by_text = {normalise(r["text"]): r["logits"] for r in read_soft_labels(soft_labels)}

    xs, ys, srcs, texts = [], [], [], []
    for name, x, y, ts in parts["fit"]:
        xs.append(x)
        ys.append(y)
        srcs += [name] * len(y)
        texts += ts
    xs.append(x_lf)
    ys.append(torch.tensor([v for _, v in voted], dtype=torch.long))
    srcs += ["lf"] * len(voted)
    texts += [t for t, _ in voted]
    X, Y = torch.cat(xs), torch.cat(ys)
    is_lf = torch.tensor([s == "lf" for s in srcs])
    soft_rows = [soft_by_text.get(normalise(t)) for t in texts]
    has_soft = torch.tensor([s is not None for s in soft_rows])
    soft = torch.tensor([s if s is not None else [0.0, 0.0, 0.0] for s in soft_rows])
    print(
        json.dumps(
            {
                "rows": {s: srcs.count(s) for s in dict.fromkeys(srcs)},
                "with_teacher_logits": int(has_soft.sum()),
                "features_s": round(time.time() - started),
            }
        ),
        flush=True,
    )

    recipes = [(0.0, 0.0), (1.0, 0.0)] + ([(0.5, 0.5), (1.0, 0.5)] if has_soft.any() else [])
    if recipe:
        lf_w, alpha = (float(v) for v in recipe.split(","))
        recipes = [(lf_w, alpha)]
    torch.set_num_threads(1)  # tiny matrix products: one thread is faster than two that wait on each other
    results: list[dict[str, Any]] = []
    for lf_w, alpha in recipes:
        w = torch.where(is_lf, torch.tensor(lf_w), torch.tensor(1.0))
        head = fit_head(X, Y, w, soft, has_soft, old, alpha)
        d = {k: scores(head, *v) for k, v in dev.items()}
        results.append(
            {
                "lf_weight": lf_w,
                "kd_alpha": alpha,
                "dev": d,
                "dev_mean_f1": round(sum(v["macro_f1"] for v in d.values()) / len(d), 4),
                "head": head,
            }
        )
        print(json.dumps({k: v for k, v in results[-1].items() if k != "head"}), flush=True)
    best = max(results, key=lambda r: r["dev_mean_f1"])
    if refit_on_dev:  # the choice is made; the dev rows now train, the held-out rows still only score
        d_texts = [t for k in dev for t in dev_texts[k]]
        d_soft = [soft_by_text.get(normalise(t)) for t in d_texts]
        best["head"] = fit_head(
            torch.cat([X, *(x for x, _ in dev.values())]),
            torch.cat([Y, *(y for _, y in dev.values())]),
            torch.cat(
                [torch.where(is_lf, torch.tensor(best["lf_weight"]), torch.tensor(1.0)), torch.ones(len(d_texts))]
            ),
            torch.cat([soft, torch.tensor([s if s is not None else [0.0, 0.0, 0.0] for s in d_soft])]),
            torch.cat([has_soft, torch.tensor([s is not None for s in d_soft])]),
            old,
            best["kd_alpha"],
        )
    report: dict[str, Any] = {
        "chosen": {"lf_weight": best["lf_weight"], "kd_alpha": best["kd_alpha"], "refit_on_dev": refit_on_dev},
        "dev_current_head_(trained_on_dev)": {k: scores(old, *v) for k, v in dev.items()},
        "heldout_before": {k: scores(old, *v) for k, v in held.items()},
        "heldout_after": {k: scores(best["head"], *v) for k, v in held.items()},
        "seconds": round(time.time() - started),
    }
    print(json.dumps(report), flush=True)
    if out:
        from safetensors.torch import load_file, save_file

        out = Path(out)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(model, out)
        tensors = load_file(str(out / HEADS_FILE))
        tensors["sentiment.weight"] = best["head"].weight.detach().float().contiguous()
        tensors["sentiment.bias"] = best["head"].bias.detach().float().contiguous()
        save_file(tensors, str(out / HEADS_FILE))
        cfg = read_config(out)
        cfg.training["sentiment_head_refit"] = {
            "what": "linear sentiment head refitted on the frozen shared encoder with teacher logits and LF labels "
            "(models/training/distill_refit.py)",
            "teacher": json.loads((Path(soft_labels) / "manifest.json").read_text())["teacher"]
            if soft_labels
            else None,
            "rows": {s: srcs.count(s) for s in dict.fromkeys(srcs)},
            "with_teacher_logits": int(has_soft.sum()),
            **report["chosen"],
            "dev_seed": DEV_SEED,
            "text_level_pooled": {"heldout_before": report["heldout_before"], "heldout_after": report["heldout_after"]},
        }
        (out / CONFIG_FILE).write_text(cfg.model_dump_json(indent=2) + "\n")
    return 0

