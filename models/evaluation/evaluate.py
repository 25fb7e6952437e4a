"""Held-out scoring of a MultiTaskModel on labelled data (used by training and `finpulse eval`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from finpulse.models.data import LabeledText, TaggedSentence
from finpulse.models.encoding import Encoded, collate, encode_sentences, encode_texts
from finpulse.models.evaluation.metrics import classification_report, entity_report
from finpulse.models.network import MultiTaskModel
from finpulse.models.tasks import TaskKind, TaskSpec


def _batches(examples: Sequence[Encoded], batch_size: int):
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@torch.inference_mode()
def predict_logits(model: MultiTaskModel, examples: Sequence[Encoded], task: TaskSpec, pad_id: int, device,
                   batch_size: int = 64, bf16: bool = False, progress: str | None = None) -> list[torch.Tensor]:
    """Logits per example, in input order (batches are length-sorted internally).

    bf16 autocast is always on for CUDA; on CPU only when asked (to measure the CPU bf16 path).
    `progress`: a description for a progress bar on stderr (a teacher labelling thousands of texts)."""
    model.eval()
    out: list[torch.Tensor | None] = [None] * len(examples)
    dev_type = torch.device(device).type
    use_amp = dev_type == "cuda" or bf16
    batches = _batches(examples, batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=progress, total=-(-len(examples) // batch_size), unit="batch", mininterval=5)
    for idx in batches:
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


def entity_predictions(enricher, docs) -> list[list[tuple[int, str]]]:
    """Per document, (predicted label index, scorer) of each labelled entity, through the enrichment
    engine itself (the same windows, precision, span head and target pass the pipeline runs). An
    entity whose name is not in the text (no offsets) takes the post's sentiment, as the pipeline would;
    its scorer is then "post"."""
    from finpulse.models.spans import SPAN_LABELS

    spans = [[(e.start, e.end) for e in d.entities if e.start is not None] for d in docs]
    preds = enricher.predict([d.text for d in docs], spans=spans)
    out: list[list[tuple[int, str]]] = []
    for d, p, sp in zip(docs, preds, spans, strict=True):
        if p.mentions is None:
            raise ValueError("the model has no entity_sentiment head")
        given = p.mentions[len(p.mentions) - len(sp):] if sp else []
        by_span = {(m.start, m.end): m for m in given}
        row = []
        for e in d.entities:
            m = by_span.get((e.start, e.end)) if e.start is not None else None
            if m is None or m.origin == "post":
                row.append((SPAN_LABELS.index(p.sentiment), "post"))
            else:
                row.append((SPAN_LABELS.index(m.sentiment), m.scorer))
        out.append(row)
    return out


def opposite_pairs(docs, preds: list[list[tuple[int, str]]]) -> dict:
    """Within each text, every (positive company, negative company) pair of the gold labels: how many get
    exactly those opposite labels (`opposite`), out of `pairs`. The hardest case for per-company sentiment:
    a model that repeats the sentence's direction for every company gets none of them."""
    from finpulse.models.spans import SPAN_LABELS

    neg, pos = SPAN_LABELS.index("negative"), SPAN_LABELS.index("positive")
    pairs = opposite = 0
    for d, row in zip(docs, preds, strict=True):
        got = [(e.label, label) for e, (label, _) in zip(d.entities, row, strict=True)]
        for gp, pp in got:
            for gn, pn in got:
                if gp == pos and gn == neg:
                    pairs += 1
                    opposite += pp == pos and pn == neg
    return {"pairs": pairs, "opposite": opposite, "rate": round(opposite / pairs, 4) if pairs else None}


def evaluate_entity_sentiment(enricher, docs) -> dict:
    """Entity-level accuracy and macro-F1 (every labelled entity counts once), the opposite-label pairs,
    and how many entities each scorer labelled (span head, target pass, or the post's sentiment)."""
    from collections import Counter

    from finpulse.models.spans import SPAN_LABELS

    per_doc = entity_predictions(enricher, docs)
    preds = [p for ps in per_doc for p in ps]
    gold = [e.label for d in docs for e in d.entities]
    report = classification_report(gold, [label for label, _ in preds], SPAN_LABELS)
    return {"documents": len(docs), **report, "opposite_pairs": opposite_pairs(docs, per_doc),
            "scored_by": dict(sorted(Counter(s for _, s in preds).items()))}
