import random

from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from finpulse.models.evaluation.metrics import classification_report, entity_report, iob2_spans


def test_iob2_spans_strict():
    assert iob2_spans(["B-PER", "I-PER", "O", "B-ORG", "B-ORG", "I-LOC"]) == {("PER", 0, 2), ("ORG", 3, 4), ("ORG", 4, 5)}


def test_entity_scores_match_seqeval_strict_mode():
    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    gold, pred = [], []
    for _ in range(300):
        n = rng.randint(1, 12)
        g = [rng.choice(tags) for _ in range(n)]
        gold.append(g)
        pred.append([t if rng.random() < 0.7 else rng.choice(tags) for t in g])
    ours = entity_report(gold, pred)
    kw = dict(mode="strict", scheme=IOB2)
    assert abs(ours["f1"] - f1_score(gold, pred, **kw)) < 1e-3
    assert abs(ours["precision"] - precision_score(gold, pred, **kw)) < 1e-3
    assert abs(ours["recall"] - recall_score(gold, pred, **kw)) < 1e-3
    per_type = seqeval_report(gold, pred, output_dict=True, **kw)
    for typ, scores in ours["per_type"].items():
        assert abs(scores["f1"] - per_type[typ]["f1-score"]) < 1e-3


def test_classification_report_macro_f1():
    rep = classification_report([0, 0, 1, 2], [0, 1, 1, 2], ["a", "b", "c"])
    assert rep["accuracy"] == 0.75
    assert rep["per_class"]["a"]["recall"] == 0.5 and rep["per_class"]["b"]["precision"] == 0.5
    assert abs(rep["macro_f1"] - (2 / 3 + 2 / 3 + 1) / 3) < 1e-3
