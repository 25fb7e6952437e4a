"""Precision and recall of company linking on a labelled set of real texts (built by tests/fixtures/make_linking_real.py from ../shared/data).

Runs the registry's NER model once over the texts, then the production linking path
(`company_mentions`: cashtags, Reuters codes, ORG entities through the gazetteer) and compares
company keys with the labels. Micro-averaged over (text, company) pairs.
"""

from __future__ import annotations

import json
from pathlib import Path


def evaluate_linking(fixture: str | Path, predictions=None, gazetteer=None) -> dict:
    from finpulse.pipeline.enrich.companies import company_mentions, load_gazetteer

    rows = [json.loads(line) for line in Path(fixture).read_text(encoding="utf-8").splitlines() if line.strip()]
    if predictions is None:
        from finpulse.models.artifacts.registry import load_registry
        from finpulse.models.engine.inference import Enricher

        predictions = Enricher(load_registry()).predict([r["text"] for r in rows])
    gaz = gazetteer or load_gazetteer()
    tp = fp = fn = 0
    false_pos: list[tuple[str, str]] = []
    false_neg: list[tuple[str, str]] = []
    unknown: list[tuple[str, str]] = []  # tickers outside the gazetteer (delisted, crypto): kept as their own key
    for row, pred in zip(rows, predictions, strict=True):
        keys = company_mentions(row["text"], pred.entities, gaz)[1]
        got = {k for k in keys if k in gaz.companies}  # the labels cover gazetteer companies only
        unknown += [(row["id"], k) for k in keys if k not in gaz.companies]
        want = set(row["companies"])
        tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
        false_pos += [(row["id"], k) for k in sorted(got - want)]
        false_neg += [(row["id"], k) for k in sorted(want - got)]
    return {
        "texts": len(rows),
        "labelled_mentions": tp + fn,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "false_positives": false_pos,
        "false_negatives": false_neg,
        "unknown_tickers": unknown,
    }
