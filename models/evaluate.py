"""Held-out scoring of a MultiTaskModel on labelled data (used by training and `finpulse eval`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from finpulse.models.data import LabeledText, TaggedSentence
from finpulse.models.encoding import Encoded, collate, encode_sentences, encode_texts
from finpulse.models.metrics import classification_report, entity_report
from finpulse.models.network import MultiTaskModel
from finpulse.models.tasks import TaskKind, TaskSpec


def _batches(examples: Sequence[Encoded], batch_size: int):
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@torch.inference_mode()
def predict_logits(model: MultiTaskModel, examples: Sequence[Encoded], task: TaskSpec, pad_id: int, device,
                   batch_size: int = 64, bf16: bool = False) -> list[torch.Tensor]:
    """Logits per example, in input order (batches are length-sorted internally).

    bf16 autocast is always on for CUDA; on CPU only when asked (to measure the CPU bf16 path)."""
    model.eval()
    out: list[torch.Tensor | None] = [None] * len(examples)
    dev_type = torch.device(device).type
    use_amp = dev_type == "cuda" or bf16
    for idx in _batches(examples, batch_size):
        batch = collate([examples[i] for i in idx], pad_id, len(task.labels))
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device), [task.name])[task.name]
        logits = logits.float().cpu()
        for row, i in enumerate(idx):
            n = len(examples[i].input_ids)
            out[i] = logits[row] if task.kind is TaskKind.SEQUENCE else logits[row, :n]
    return out  # type: ignore[return-value]


def evaluate_classification(model, tokenizer, rows: Sequence[LabeledText], task: TaskSpec, device, max_length: int = 128,
                            bf16: bool = False) -> dict:
    examples = encode_texts(tokenizer, [r.text for r in rows], [r.label for r in rows], max_length)
    logits = predict_logits(model, examples, task, tokenizer.pad_token_id, device, bf16=bf16)
    preds = [int(lg.argmax()) for lg in logits]
    return classification_report([r.label for r in rows], preds, task.labels)


def evaluate_ner(model, tokenizer, sentences: Sequence[TaggedSentence], task: TaskSpec, device, max_length: int = 512,
                 bf16: bool = False) -> dict:
    """Word-level strict IOB2 scores; each word takes the prediction of its first sub-word token."""
    examples, firsts = encode_sentences(tokenizer, sentences, task.labels, max_length)
    logits = predict_logits(model, examples, task, tokenizer.pad_token_id, device, bf16=bf16)
    gold, pred = [], []
    for sent, lg, first in zip(sentences, logits, firsts, strict=False):
        token_pred = lg.argmax(-1).tolist()
        gold.append([task.labels[t] for t in sent.tags])
        pred.append([task.labels[token_pred[f]] if f >= 0 else "O" for f in first])
    return entity_report(gold, pred)


def evaluate(model, tokenizer, data, task: TaskSpec, device, bf16: bool = False) -> dict:
    if task.kind is TaskKind.SEQUENCE:
        return evaluate_classification(model, tokenizer, data, task, device, bf16=bf16)
    return evaluate_ner(model, tokenizer, data, task, device, bf16=bf16)


def headline(task: TaskSpec, report: dict) -> float:
    """The single number model selection maximises: macro-F1 for classes, entity F1 for NER."""
    return report["macro_f1"] if task.kind is TaskKind.SEQUENCE else report["f1"]


def entity_predictions(enricher, docs) -> list[list[int]]:
    """Per document, the predicted label index of each labelled entity, through the enrichment
    engine itself (the same windows, precision and span scoring the pipeline runs). An entity whose
    name is not in the text (no offsets) takes the post's sentiment, as the pipeline would."""
    from finpulse.models.spans import SPAN_LABELS

    spans = [[(e.start, e.end) for e in d.entities if e.start is not None] for d in docs]
    preds = enricher.predict([d.text for d in docs], spans=spans)
    out: list[list[int]] = []
    for d, p, sp in zip(docs, preds, spans, strict=True):
        if p.mentions is None:
            raise ValueError("the model has no entity_sentiment head")
        given = p.mentions[len(p.mentions) - len(sp):] if sp else []
        by_span = {(m.start, m.end): m.sentiment for m in given}
        out.append([SPAN_LABELS.index(by_span[(e.start, e.end)] if e.start is not None else p.sentiment)
                    for e in d.entities])
    return out


def evaluate_entity_sentiment(enricher, docs) -> dict:
    """Entity-level accuracy and macro-F1 (every labelled entity counts once)."""
    from finpulse.models.spans import SPAN_LABELS

    preds = entity_predictions(enricher, docs)
    gold = [e.label for d in docs for e in d.entities]
    flat = [p for ps in preds for p in ps]
    report = classification_report(gold, flat, SPAN_LABELS)
    return {"documents": len(docs), **report}
