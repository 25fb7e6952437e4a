"""The committed per-company sentiment head, measured on real held-out rows of the entity-level files.

Rows come from the document-level held-out split (models/data.holdout_split, seed 13, 10%) that the
head never saw in training or model selection. Thresholds sit a little under the rates measured
when the head was committed (see models/cards/entity_sentiment.md), so a regression fails them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from finpulse.models.artifacts.registry import DEFAULT_REGISTRY, load_registry
from finpulse.models.data import holdout_split
from finpulse.models.engine.inference import Enricher
from finpulse.models.spans import SPAN_LABELS, find_by_name, read_entity_jsonl
from finpulse.pipeline.cli.main import main
from finpulse.pipeline.runtime.settings import InferenceSettings

FILES = ("sentfin_entity_train.jsonl", "finentity_train.jsonl")
NEG, POS = SPAN_LABELS.index("negative"), SPAN_LABELS.index("positive")



@pytest.fixture(scope="module")
def data(real_data) -> Path:
    """The folder of the entity-level files (the test skips when they are missing)."""
    return real_data.path(*FILES).parent


def heldout(data: Path, name: str):
    docs = read_entity_jsonl(data / name)
    _, held = holdout_split(docs)
    return [docs[i] for i in held]


@pytest.fixture(scope="module")
def enricher():
    return Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings())


def test_companies_with_opposite_labels_in_one_text(data, enricher):
    """Real held-out texts naming a positive and a negative company: most pairs get opposite labels, and the
    positive company scores above the negative one. It is the target-marked pass that does it: with
    `target_pass="off"` (the span head alone) 3 of the 21 pairs came out opposite and this test failed."""
    docs = [d for name in FILES for d in heldout(data, name)
            if {NEG, POS} <= {e.label for e in d.entities if e.start is not None}]
    assert len(docs) >= 10  # real multi-company rows with a positive and a negative company
    spans = [[(e.start, e.end) for e in d.entities] for d in docs]
    preds = enricher.predict([d.text for d in docs], spans=spans)
    pairs = opposite = ordered = 0
    for d, p in zip(docs, preds, strict=True):
        got = {(m.start, m.end): m for m in p.mentions[-len(d.entities):]}
        pos = [got[(e.start, e.end)] for e in d.entities if e.label == POS]
        neg = [got[(e.start, e.end)] for e in d.entities if e.label == NEG]
        for a in pos:
            for b in neg:
                pairs += 1
                opposite += a.sentiment == "positive" and b.sentiment == "negative"
                ordered += a.score > b.score
    assert opposite / pairs >= OPPOSITE_MIN, f"{opposite}/{pairs} pairs labelled opposite"
    assert ordered / pairs >= ORDERED_MIN, f"{ordered}/{pairs} pairs with the positive company scored higher"


def test_the_target_pass_rereads_only_texts_that_name_several_companies(enricher):
    """The default policy: a text with two distinct mentions is re-read with each company marked; a text
    about one company keeps the span head's label; with the pass off the target model is not even loaded."""
    two = "Apple beats estimates while Samsung slumps"  # the example; in no training file
    one = "Infosys shares crash 10% after weak guidance"
    preds = enricher.predict([two, one], spans=[[(0, 5), (28, 35)], [(0, 7)]])
    given = [m for m in preds[0].mentions if m.origin == "given"]
    assert [m.scorer for m in given] == ["target", "target"]
    assert [m.sentiment for m in given] == ["positive", "negative"]
    assert [m.scorer for m in preds[1].mentions if m.origin == "given"] == ["span"]
    off = Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings(target_pass="off"))
    assert off.target is None
    assert {m.scorer for m in off.predict([two], spans=[[(0, 5), (28, 35)]])[0].mentions} == {"span"}


def test_a_single_company_post_gets_the_post_direction(data, enricher):
    docs = [d for d in heldout(data, FILES[0]) if len(d.entities) == 1][:150]
    preds = enricher.predict([d.text for d in docs], spans=[[(d.entities[0].start, d.entities[0].end)] for d in docs])
    same = sum(p.mentions[-1].sentiment == p.sentiment for p in preds)
    assert same / len(docs) >= SINGLE_MIN, f"{same}/{len(docs)} single-company posts agree with the post label"


def test_rows_carry_one_element_per_company_with_offsets_into_the_text(enricher):
    from types import SimpleNamespace

    from finpulse.pipeline.enrich.handler import company_spans
    from finpulse.pipeline.enrich.rows import enriched_row
    from finpulse.schemas.records import InputRecord

    text = "Apple shares jump after record iPhone sales, while $MSFT slides as Microsoft cuts its cloud outlook."
    finder = Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings(), mention_finder=company_spans)
    pred = finder.predict([text])[0]
    coords = SimpleNamespace(topic=None, partition=None, offset=None)
    row = enriched_row(InputRecord(id="x", text=text), pred, "v", coords)
    got = {c["ticker"]: c for c in row["entity_sentiment"]}
    assert set(got) == {"AAPL", "MSFT"}  # "$MSFT" and "Microsoft" are one company, one element
    for c in got.values():
        assert text[c["start"]:c["end"]] == c["text"] and abs(sum(c["probs"].values()) - 1) < 1e-3
    assert got["AAPL"]["relevance"] == 1.0 and 0 < got["MSFT"]["relevance"] < 1


def test_eval_command_scores_entities_and_looks_up_missing_offsets(tmp_path):
    rows = [{"id": "a", "text": "Gold shines on seasonal demand; Silver dull", "entities": [
                {"text": "Gold", "start": 0, "end": 4, "sentiment": "positive"},
                {"text": "silver", "start": None, "end": None, "sentiment": "negative"}]},
            {"id": "b", "text": "Infosys shares crash 10% after weak guidance", "entities": [
                {"text": "Infosys", "start": 0, "end": 7, "sentiment": "negative"}]}]
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert find_by_name(rows[0]["text"], "silver") == (32, 38)  # case-insensitive whole word
    out = CliRunner().invoke(main, ["eval", "entity-sentiment", "--data", str(path)])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["task"] == "entity-sentiment" and report["n"] == 3 and report["documents"] == 2
    assert 0.0 <= report["accuracy"] <= 1.0 and "macro_f1" in report


# Measured with the committed models (bf16 and fp32 alike; the three-layer target model t2): opposite labels
# 14/21 pairs (0.67; the span head alone 3/21, the six-layer t1 13/21), positive company scored higher 19/21
# (t1 21/21), single-company posts agreeing with the post label 132/150 (0.88). "Most" is over half: two flips
# (12/21, 0.57) still pass; the order allows one more miss (18/21).
OPPOSITE_MIN = 0.55
ORDERED_MIN = 0.85
SINGLE_MIN = 0.8
