"""The target-marked input and the policy that picks which texts get the second pass (models/engine/targets.py)."""

from __future__ import annotations

import re

import pytest

from finpulse.models.data import holdout_split
from finpulse.models.engine.targets import mark_target, pick_targets, target_rows, wants_target_pass
from finpulse.models.spans import read_entity_jsonl


def test_the_marked_input_names_the_target_first_and_brackets_it_in_place():
    text = "Apple beats estimates while Samsung slumps"
    assert mark_target(text, 28, 35) == "Samsung [SEP] Apple beats estimates while [ Samsung ] slumps"
    assert mark_target(text, 0, 5) == "Apple [SEP] [ Apple ] beats estimates while Samsung slumps"


def test_a_long_text_is_cropped_around_the_mention_at_word_boundaries():
    text = " ".join(f"w{i}" for i in range(400)) + " Tesla recalls cars " + " ".join(f"v{i}" for i in range(400))
    start = text.index("Tesla")
    marked = mark_target(text, start, start + 5, context=30)
    body = marked.split(" [SEP] ", 1)[1]
    assert "[ Tesla ] recalls cars" in body and len(body) < 80
    words = set(text.split()) | {"[", "]"}
    assert all(word in words for word in body.split())  # no half word at either edge


APPLE, SAMSUNG, APPLE_AGAIN = (0, 5, "Apple"), (28, 35, "Samsung"), (50, 55, "APPLE")


@pytest.mark.parametrize(("mentions", "policy", "expected"), [
    ([APPLE, SAMSUNG], "multi", True),
    ([APPLE, APPLE_AGAIN], "multi", False),  # one name twice is one company
    ([(0, 5, "$AAPL"), (1, 5, "AAPL")], "multi", False),  # a cashtag and the ORG inside it: one mention
    ([APPLE], "multi", False),
    ([APPLE], "all", True),
    ([], "all", False),
    ([APPLE, SAMSUNG], "off", False),
])
def test_the_policy_picks_texts_naming_several_things(mentions, policy, expected):
    assert wants_target_pass(mentions, policy) is expected


def test_an_unknown_policy_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="multi, all, off"):
        wants_target_pass([APPLE, SAMSUNG], "some")


def test_training_parts_never_share_a_document_and_hold_out_the_span_heads_documents(real_data):
    path = real_data.path("finentity_train.jsonl")
    fit, select, held = (target_rows([path], part) for part in ("fit", "select", "heldout"))
    texts = [{r.text.split(" [SEP] ", 1)[1].replace("[ ", "").replace(" ]", "") for r in rows}
             for rows in (fit, select, held)]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    docs = read_entity_jsonl(path)
    _, held_idx = holdout_split(docs)  # the span head's held-out documents: the same ones
    assert len(held) == sum(1 for i in held_idx for e in docs[i].entities if e.start is not None)
    assert len(target_rows([path, path], "fit")) == 2 * len(fit)  # a file listed twice is oversampled
    assert len(target_rows([path, path], "select")) == len(select)  # but selection counts each row once


def test_the_callers_spans_pick_the_targets_and_confident_orgs_only_stand_in_for_none():
    pepsi, sec = (0, 7, "PepsiCo"), (35, 38, "SEC")
    assert pick_targets([pepsi], [pepsi, sec], "multi") == []  # one company and a regulator: no pass
    assert pick_targets([], [pepsi, sec], "multi") == [pepsi, sec]  # no company spans: the ORGs stand in
    gs, gs_org, lly = (8, 11, "$GS"), (9, 11, "GS"), (16, 20, "$LLY")
    assert pick_targets([gs, gs_org, lly], [], "multi") == [gs, lly]  # the cashtag and the ORG inside it: once
    assert pick_targets([gs, lly], [], "off") == []


def test_transfer_inputs_mark_each_mention_skip_the_labelled_sets_and_are_reproducible():
    from finpulse.models.engine.targets import transfer_inputs

    def cashtags(text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in re.finditer(r"\$[A-Z]+", text)]

    texts = ["$AAPL beats, $MSFT misses, $KO flat", "$KO falls 5%", "$KO falls 5%", "no company here",
             "Labelled  headline about $GS"]
    got = transfer_inputs(texts, cashtags, exclude={"labelled headline about $gs"}, per_text=2)
    assert sorted(got) == sorted([
        "$AAPL [SEP] [ $AAPL ] beats, $MSFT misses, $KO flat",
        "$MSFT [SEP] $AAPL beats, [ $MSFT ] misses, $KO flat",
        "$KO [SEP] [ $KO ] falls 5%",
    ])  # two of three mentions, the repeated text once, the labelled one never
    assert transfer_inputs(texts, cashtags, seed=3) == transfer_inputs(texts, cashtags, seed=3)
    assert len(transfer_inputs(texts, cashtags, limit=2)) == 2
