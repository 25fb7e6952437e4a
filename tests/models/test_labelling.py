"""Labelling functions (models/training/labelling.py): what each one says on the shapes it was written for,
what it leaves alone, and the vote and table arithmetic."""

from __future__ import annotations

import pytest

from finpulse.models.training.labelling import (
    ABSTAIN,
    NEG,
    NEU,
    POS,
    adverse_event,
    beats_misses_by,
    extreme_day,
    guidance_direction,
    lf_table,
    numbers_vs_estimate,
    price_move,
    rating_change,
    vote,
)


@pytest.mark.parametrize(
    ("fn", "text", "want"),
    [
        (numbers_vs_estimate, "Coca-Cola revs. miss $11.976B vs. $12.119B (est) $KO", NEG),
        (numbers_vs_estimate, "Coca-Cola posts earnings of 48 cents a share vs. 53 cents estimate", NEG),
        (numbers_vs_estimate, "$KO Q3 EPS $0.58 vs $0.53 consensus", POS),
        (numbers_vs_estimate, "Revenue $4.2B vs. $4.0B a year ago", ABSTAIN),  # no estimate: no verdict
        (beats_misses_by, "Ball EPS beats by $0.04, misses on revenue", NEU),  # mixed, as TFNS labels it
        (beats_misses_by, "Kohl's EPS misses by $0.12", NEG),
        (guidance_direction, "FedEx cuts full-year guidance", NEG),
        (guidance_direction, "Nike no longer expects revenue growth this year", NEG),
        (guidance_direction, "Disney sees $100M debut; Rosenblatt boosts target", ABSTAIN),  # a price target
        (price_move, "$HOG shares jump 9% premarket", POS),
        (price_move, "Boeing stock sinks 12% after crash", NEG),
        (price_move, "Inflation rose 2% in May", ABSTAIN),  # no company as the subject
        (extreme_day, "$KO is having its worst day since Oct. 2008", NEG),
        (extreme_day, "Wall Street slips from record highs after jobs report", ABSTAIN),
        (rating_change, "Goldman downgrades Nike to Sell", NEG),
        (adverse_event, "Ford recalls 400,000 vehicles over fire risk", NEG),
        (adverse_event, "McDonald's settles class action lawsuit", ABSTAIN),  # resolved
    ],
)
def test_each_labelling_function_on_its_own_shapes(fn, text, want):
    assert fn(text) == want


def test_the_vote_is_the_majority_and_abstains_on_a_tie():
    assert vote([ABSTAIN, POS, POS, NEG]) == POS
    assert vote([POS, NEG]) == ABSTAIN
    assert vote([ABSTAIN, ABSTAIN]) == ABSTAIN


def test_the_table_counts_coverage_and_precision_where_an_lf_fires():
    matrix = [[POS], [POS], [ABSTAIN], [NEG]]
    gold = [POS, NEG, NEU, NEG]
    row, voted = lf_table(matrix, gold, lfs=[type("LF", (), {"name": "x"})()])  # type: ignore[list-item]
    assert row == {
        "lf": "x",
        "fires": 3,
        "coverage": 0.75,
        "precision": 0.6667,
        "gives": {"negative": 1, "neutral": 0, "positive": 2},
    }
    assert voted["lf"] == "majority vote" and voted["precision"] == 0.6667
