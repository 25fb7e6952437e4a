"""Scores: classification report and entity-level (strict IOB2) precision/recall/F1.

The entity scorer matches seqeval's strict IOB2 mode (a test checks it against seqeval on
random tag sequences); it is implemented here so training can run where seqeval is absent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def _prf(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    per_class = {}
    f1s = []
    for i, name in enumerate(labels):
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=False) if t == i and p == i)
        n_pred = sum(1 for p in y_pred if p == i)
        n_true = sum(1 for t in y_true if t == i)
        p, r, f = _prf(tp, n_pred, n_true)
        per_class[name] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": n_true}
        if n_true:
            f1s.append(f)
    accuracy = sum(1 for t, p in zip(y_true, y_pred, strict=False) if t == p) / max(1, len(y_true))
    return {
        "n": len(y_true),
        "accuracy": round(accuracy, 4),
        "macro_f1": round(sum(f1s) / max(1, len(f1s)), 4),
        "per_class": per_class,
    }


def iob2_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entities as (type, start, end_exclusive); strict: an entity starts only at B-X, I-X must continue X."""
    spans: set[tuple[str, int, int]] = set()
    kind: str | None = None
    start = 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, typ = tag.partition("-")
        continues = prefix == "I" and kind == typ
        if kind is not None and not continues:
            spans.add((kind, start, i))
            kind = None
        if prefix == "B":
            kind, start = typ, i
    return spans


def entity_report(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict:
    if len(true_tags) != len(pred_tags):
        raise ValueError("true and predicted sentence counts differ")
    tp: Counter[str] = Counter()
    n_true: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for gold, pred in zip(true_tags, pred_tags, strict=False):
        if len(gold) != len(pred):
            raise ValueError("a predicted sentence has a different length than its gold tags")
        ts, ps = iob2_spans(gold), iob2_spans(pred)
        n_true.update(s[0] for s in ts)
        n_pred.update(s[0] for s in ps)
        tp.update(s[0] for s in ts & ps)
    per_type = {}
    for typ in sorted(set(n_true) | set(n_pred)):
        p, r, f = _prf(tp[typ], n_pred[typ], n_true[typ])
        per_type[typ] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": n_true[typ]}
    p, r, f = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_true.values()))
    return {
        "sentences": len(true_tags),
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f, 4),
        "per_type": per_type,
    }
