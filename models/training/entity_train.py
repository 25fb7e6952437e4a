"""Training the per-company (span) sentiment head on a frozen encoder, from precomputed token states.

Why frozen and precomputed: the span head reads the shared encoder's final token states, and the
encoder also serves sentiment, topic and NER. Keeping it frozen means training the head cannot
change any other task's output, and each training window is encoded exactly once (with the same
windowing and precision as the enrichment engine), after which an epoch over ~12k mentions costs
seconds on a CPU instead of an encoder pass.

    finpulse train-entity-head --model models/default \
        --data ../shared/data/sentfin_entity_train.jsonl --data ../shared/data/finentity_train.jsonl

Splits: each file is split by document (models/data.holdout_split, seed 13, 10% held out); the held-out
documents are never seen in training or model selection. Model selection (best epoch) uses a second
document-level split of the training part (seed 14, 10%), so the held-out figures are not tuned on.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finpulse.models.data import holdout_split
from finpulse.models.evaluation.metrics import classification_report
from finpulse.models.spans import (
    SPAN_LABELS,
    EntityDoc,
    SpanSentimentHead,
    best_window,
    read_entity_jsonl,
    span_token_mask,
)

HEAD_NAME = "entity_sentiment"


@dataclass
class SpanExample:
    window: int  # index into the feature store's windows
    span: list[bool]
    label: int
    doc: int  # index of the document in its file
    source: str


@dataclass
class FeatureStore:
    """Final token states of every window (fp16, unpadded) and the examples that point into them."""

    states: list[torch.Tensor]
    examples: list[SpanExample]


def windows_of(tokenizer, texts: Sequence[str], max_length: int, stride: int = 32, max_chars: int = 20_000):
    """The enrichment engine's windowing (models/inference.Enricher._windows), returned as
    (text_index, input_ids, offsets) triples."""
    enc = tokenizer([t[:max_chars] for t in texts], truncation=True, max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    mapping = enc["overflow_to_sample_mapping"]
    return [(int(mapping[i]), enc["input_ids"][i], [tuple(o) for o in enc["offset_mapping"][i]])
            for i in range(len(enc["input_ids"]))]


@torch.inference_mode()
def encode_windows(model, tokenizer, windows, bf16: bool, batch_tokens: int = 8192) -> list[torch.Tensor]:
    """Final hidden states per window, in order (length-sorted batches, dynamic padding)."""
    out: list[torch.Tensor | None] = [None] * len(windows)
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][1]))
    pad = tokenizer.pad_token_id
    i = 0
    while i < len(order):
        width = len(windows[order[i]][1])
        j = i
        while j < len(order) and (j - i + 1) * max(width, len(windows[order[j]][1])) <= batch_tokens:
            width = max(width, len(windows[order[j]][1]))
            j += 1
        idx = order[i:j] if j > i else order[i : i + 1]
        width = max(len(windows[k][1]) for k in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, k in enumerate(idx):
            n = len(windows[k][1])
            ids[r, :n] = torch.tensor(windows[k][1])
            mask[r, :n] = 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = model.encode(ids, mask)
        for r, k in enumerate(idx):
            out[k] = hidden[r, : len(windows[k][1])].to(torch.float16).clone()
        i += len(idx)
    return out  # type: ignore[return-value]


def build_store(model, tokenizer, files: dict[str, list[EntityDoc]], max_length: int, bf16: bool, log) -> FeatureStore:
    states: list[torch.Tensor] = []
    examples: list[SpanExample] = []
    for source, docs in files.items():
        t0 = time.time()
        wins = windows_of(tokenizer, [d.text for d in docs], max_length)
        by_doc: dict[int, list[int]] = {}
        for w, (ti, _, _) in enumerate(wins):
            by_doc.setdefault(ti, []).append(w)
        base = len(states)
        states.extend(encode_windows(model, tokenizer, wins, bf16))
        skipped = 0
        for di, d in enumerate(docs):
            cand = by_doc.get(di, [])
            for e in d.entities:
                if e.start is None or e.end is None:
                    skipped += 1
                    continue
                k = best_window([wins[w][2] for w in cand], e.start, e.end)
                if k is None:
                    skipped += 1
                    continue
                w = cand[k]
                examples.append(SpanExample(base + w, span_token_mask(wins[w][2], e.start, e.end), e.label, di, source))
        log(f"{source}: {len(docs)} docs, {len(wins)} windows encoded in {time.time() - t0:.0f}s, "
            f"{skipped} mentions skipped (no offsets / beyond max_chars)")
    return FeatureStore(states, examples)


def collate_spans(store: FeatureStore, batch: Sequence[SpanExample]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(store.states[e.window].shape[0] for e in batch)
    hid = store.states[batch[0].window].shape[1]
    h = torch.zeros((len(batch), width, hid))
    mask = torch.zeros((len(batch), width), dtype=torch.bool)
    span = torch.zeros((len(batch), width), dtype=torch.bool)
    for r, e in enumerate(batch):
        st = store.states[e.window]
        n = st.shape[0]
        h[r, :n] = st.float()
        mask[r, :n] = True
        span[r, :n] = torch.tensor(e.span)
    return h, mask, span, torch.tensor([e.label for e in batch])


@torch.inference_mode()
def predict_spans(head: SpanSentimentHead, store: FeatureStore, examples: Sequence[SpanExample],
                  batch_size: int = 256) -> torch.Tensor:
    head.eval()
    out = []
    for i in range(0, len(examples), batch_size):
        h, m, s, _ = collate_spans(store, examples[i : i + batch_size])
        out.append(torch.softmax(head(h, m, s), -1))
    return torch.cat(out) if out else torch.zeros((0, len(SPAN_LABELS)))


def report(head: SpanSentimentHead, store: FeatureStore, examples: Sequence[SpanExample]) -> dict:
    probs = predict_spans(head, store, examples)
    return classification_report([e.label for e in examples], probs.argmax(-1).tolist(), SPAN_LABELS)


def train_head(store: FeatureStore, train: list[SpanExample], select: list[SpanExample], hidden: int, epochs: int = 12,
               lr: float = 1e-3, batch_size: int = 32, seed: int = 13, repeat: dict[str, int] | None = None,
               log=print) -> tuple[SpanSentimentHead, list[dict]]:
    """AdamW with sqrt inverse-frequency class weights (macro-F1); keeps the epoch with the best
    selection-set macro-F1."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = SpanSentimentHead(hidden, len(SPAN_LABELS))
    counts = torch.bincount(torch.tensor([e.label for e in train]), minlength=len(SPAN_LABELS)).float().clamp(min=1)
    weight = (counts.max() / counts).sqrt()
    weight = weight / weight.mean()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    pool = [e for e in train for _ in range((repeat or {}).get(e.source, 1))]
    steps = epochs * ((len(pool) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    best, best_state, history = -1.0, None, []
    for epoch in range(1, epochs + 1):
        head.train()
        rng.shuffle(pool)
        t0 = time.time()
        total = 0.0
        for i in range(0, len(pool), batch_size):
            h, m, s, y = collate_spans(store, pool[i : i + batch_size])
            loss = loss_fn(head(h, m, s), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(y)
        sel = report(head, store, select)
        history.append({"epoch": epoch, "loss": round(total / len(pool), 4), "select_accuracy": sel["accuracy"],
                        "select_macro_f1": sel["macro_f1"], "seconds": round(time.time() - t0, 1)})
        log(json.dumps(history[-1]))
        if sel["macro_f1"] > best:
            best = sel["macro_f1"]
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)  # type: ignore[arg-type]
    return head, history


def _log_to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train_entity_head(artifact: Path, data: Sequence[Path], repeat: dict[str, int] | None = None,
                      mixed_repeat: int = 1, epochs: int = 12, lr: float = 1e-3, seed: int = 13,
                      holdout_fraction: float = 0.1, save: bool = False, threads: int = 1,
                      log: Callable[[str], None] | None = None) -> dict:
    """Train the span head on the artifact's frozen encoder from the entity-level JSONL files.

    `repeat` oversamples a file by its stem (FILE_STEM: N), `mixed_repeat` the mentions of documents
    whose entities carry different labels (what target dependence is learnt from). Returns the
    held-out report per file and the best epoch; `save` writes the head into the artifact."""
    from finpulse.models.artifacts.artifact import load_artifact
    from finpulse.models.engine.inference import use_bf16

    repeat = dict(repeat or {})
    log = log or _log_to_stderr
    torch.set_num_threads(threads)
    started = time.time()
    loaded = load_artifact(artifact, "cpu")
    bf16 = use_bf16("auto", "cpu")
    files = {Path(f).stem: read_entity_jsonl(f) for f in data}
    # encoded afresh each run (~2 min): a pickled cache of them would break the rule that nothing we load unpickles
    store = build_store(loaded.model, loaded.tokenizer, files, loaded.config.max_length, bf16, log)
    held_docs = {src: set(holdout_split(docs, fraction=holdout_fraction, seed=seed)[1]) for src, docs in files.items()}
    sel_docs = {}
    for src, docs in files.items():
        rest = [i for i in range(len(docs)) if i not in held_docs[src]]
        _, sel = holdout_split([docs[i] for i in rest], seed=seed + 1)  # the selection split
        sel_docs[src] = {rest[i] for i in sel}
    held = [e for e in store.examples if e.doc in held_docs[e.source]]
    select = [e for e in store.examples if e.doc in sel_docs[e.source]]
    train = [e for e in store.examples if e.doc not in held_docs[e.source] and e.doc not in sel_docs[e.source]]
    log(f"mentions: train {len(train)}, selection {len(select)}, held-out {len(held)}")
    mixed = {(src, i) for src, docs in files.items() for i, d in enumerate(docs)
             if len({e.label for e in d.entities}) > 1}
    train = [e for e in train for _ in range(mixed_repeat if (e.source, e.doc) in mixed else 1)]
    log(f"mentions of mixed-label documents repeated x{mixed_repeat}: {len(train)} training mentions per epoch "
        "(before file oversampling)")
    hidden = int(getattr(loaded.model.encoder.config, "hidden_size"))  # noqa: B009 - typed Module attribute
    head, history = train_head(store, train, select, hidden, epochs, lr, seed=seed, repeat=repeat, log=log)
    result: dict[str, Any] = {"train_seconds_total": round(time.time() - started), "history": history,
              "heldout": {src: report(head, store, [e for e in held if e.source == src]) for src in files}}
    best = max(history, key=lambda h: h["select_macro_f1"])
    if save:
        save_head(Path(artifact), head, {"data": [Path(f).name for f in data], "repeat": repeat,
                                         "epochs": epochs, "lr": lr, "seed": seed, "mixed_repeat": mixed_repeat,
                                         "holdout_fraction": holdout_fraction,
                                         "selection": "document split of the training part, seed+1, 10%",
                                         "history": history}, result["heldout"])
    return {k: v for k, v in result.items() if k != "history"} | {"best": best}


def save_head(artifact: Path, head: SpanSentimentHead, training: dict, heldout: dict) -> None:
    """Add (or replace) the span head in an artifact: its tensors join heads.safetensors under
    `entity_sentiment.`, its task joins the config; the encoder files are untouched."""
    from safetensors.torch import load_file, save_file

    from finpulse.models.artifacts.artifact import CONFIG_FILE, HEADS_FILE, TaskConfig, read_config
    from finpulse.models.tasks import TaskKind

    tensors = {k: v for k, v in load_file(str(artifact / HEADS_FILE)).items() if not k.startswith(HEAD_NAME + ".")}
    tensors |= {f"{HEAD_NAME}.{k}": v.detach().float().contiguous() for k, v in head.state_dict().items()}
    save_file(tensors, str(artifact / HEADS_FILE))
    cfg = read_config(artifact)
    span_task = TaskConfig(name=HEAD_NAME, kind=TaskKind.SPAN, labels=list(SPAN_LABELS))
    cfg.tasks = [t for t in cfg.tasks if t.name != HEAD_NAME] + [span_task]
    cfg.training[HEAD_NAME] = training
    cfg.metrics = {k: v for k, v in cfg.metrics.items() if not k.startswith(HEAD_NAME + "/")}
    cfg.metrics |= {f"{HEAD_NAME}/{src}_heldout": rep for src, rep in heldout.items()}
    (artifact / CONFIG_FILE).write_text(cfg.model_dump_json(indent=2) + "\n")
