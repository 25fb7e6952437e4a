"""Behavioural probes (models/evaluation/probes.py): the probe file is well-formed, the judging rules
are the documented ones, each profile keeps its floors, and no probe is training data."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from finpulse.models.evaluation.probes import (
    FLOORS_FILE,
    Probe,
    ProbeFormatError,
    Reading,
    below_floors,
    judge,
    leaked,
    pass_rates,
    read_floors,
    read_probes,
)

MIN_PER_CAPABILITY = 12
# What training and distillation read (models/training/head_refit.py, soft_labels.py, `finpulse train`).
TRAINING_FILES = (
    "tfns_sentiment_train.csv",
    "tfn_topic_train.csv",
    "sentfin_entity_train.jsonl",
    "finentity_train.jsonl",
    "finer_ord_train.txt",
    "finer_ord_dev.txt",
    "fin_sec_train.txt",
    "conll2003_train.txt",
    "conll2003_dev.txt",
)


def test_the_probe_file_is_well_formed_and_covers_every_capability():
    probes = read_probes()  # refuses bad labels, a company missing from a text, MFT without labels, ...
    assert len(probes) >= 250
    per_cap = Counter(p.capability for p in probes)
    assert min(per_cap.values()) >= MIN_PER_CAPABILITY, per_cap
    assert {p.test for p in probes} == {"MFT", "INV", "DIR"}
    # the per-company capabilities the issue names have company labels on every probe
    for cap in ("two_company_contrast", "ticker_lists"):
        assert all(len(p.companies) >= 2 for p in probes if p.capability == cap), cap
    assert len({p.id for p in probes}) == len(probes)


def test_a_probe_naming_a_company_that_is_not_in_its_text_is_refused(tmp_path):
    bad = {
        "id": "x-1",
        "capability": "x",
        "test": "MFT",
        "text": "$KO misses",
        "post": "negative",
        "companies": {"$PEP": "negative"},
        "pair": None,
        "relation": None,
    }
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ProbeFormatError, match=r"p.jsonl:1 \(x-1\).*'\$PEP' is not in the text"):
        read_probes(path)
    bad |= {"companies": {"$KO": "bearish"}}
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ProbeFormatError, match="labels must be one of"):
        read_probes(path)


def test_judging_follows_the_test_type():
    mft = Probe("m", "c", "MFT", "$KO fizzles, $HOG roars", None, {"$KO": "negative", "$HOG": "positive"})
    right = Reading("positive", 0.2, {"$KO": ("negative", -0.5), "$HOG": ("positive", 0.6)})
    one_wrong = Reading("positive", 0.2, {"$KO": ("positive", 0.1), "$HOG": ("positive", 0.6)})
    assert judge(mft, right, None, True) == {"post": None, "companies": True}
    assert judge(mft, one_wrong, None, True) == {"post": None, "companies": False}
    assert judge(mft, right, None, False) == {"post": None, "companies": None}  # a post-only profile
    inv = Probe("i", "c", "INV", "a", None, {}, "b", "same")
    assert judge(inv, Reading("neutral", 0.0), Reading("neutral", 0.3), True)["post"] is True
    assert judge(inv, Reading("neutral", 0.0), Reading("positive", 0.6), True)["post"] is False
    dir_ = Probe("d", "c", "DIR", "a", None, {}, "b", "more_negative")
    assert judge(dir_, Reading("neutral", 0.1), Reading("neutral", 0.05), True)["post"] is True
    assert judge(dir_, Reading("neutral", 0.1), Reading("neutral", 0.1), True)["post"] is False  # must move


def test_pass_rates_count_post_and_company_checks_apart():
    probes = [Probe(str(i), "cap", "MFT", "t", "negative", {}) for i in range(3)]
    verdicts = [
        {"post": True, "companies": None},
        {"post": False, "companies": True},
        {"post": True, "companies": None},
    ]
    rates = pass_rates(probes, verdicts)
    assert rates["cap"]["post"] == {"passed": 2, "n": 3, "rate": 0.6667}
    assert rates["cap"]["companies"] == {"passed": 1, "n": 1, "rate": 1.0}
    assert rates["all"] == rates["cap"]


def test_below_floors_names_each_capability_under_its_floor():
    rates = {"a": {"post": {"rate": 0.5}, "companies": {"rate": None}}}
    assert below_floors(rates, {"a": {"post": 0.5}}) == []
    assert below_floors(rates, {"a": {"post": 0.6, "companies": 0.1}}) == [
        "a post: 0.5 < floor 0.6",
        "a companies: None < floor 0.1",
    ]


def test_no_probe_text_is_in_any_training_file(real_data):
    from finpulse.models.training.soft_labels import file_texts

    corpus = [t for name in TRAINING_FILES for t in file_texts(real_data.path(name))]
    assert len(corpus) > 50_000
    probes = read_probes()
    assert leaked(probes, corpus) == []
    # the check can fail: a training text planted among the probes is found
    planted = Probe("planted", "c", "MFT", "  " + corpus[123].upper() + " ", "neutral", {})
    assert leaked([*probes, planted], corpus) == ["planted"]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["fast", "accurate"])
def test_each_profile_keeps_its_floors(profile):
    """Floors (models/probes/floors.json) sit a little under the pass rates measured when they were set,
    so bf16-vs-fp32 differences between CPUs do not fail the suite; they may only rise."""
    from finpulse.models.evaluation.probes import evaluate_profile

    result = evaluate_profile(profile, read_probes(), "cpu")
    floors = read_floors(FLOORS_FILE)[profile]
    assert set(floors) >= {p.capability for p in read_probes()}
    assert below_floors(result["rates"], floors) == []


def test_eval_probes_scores_a_candidate_registry_under_a_profile(tmp_path):
    """`finpulse eval probes --profile fast --registry FILE`: a model not yet adopted is probed where
    the fast profile's would be (how a candidate is checked against the fast floors before adoption)."""
    from click.testing import CliRunner

    from finpulse.models.artifacts.registry import SHIPPED
    from finpulse.models.evaluation.probes import PROBES_FILE
    from finpulse.pipeline.cli.main import main

    shipped = json.loads(SHIPPED["default"].read_text())
    for entry in shipped.values():  # the shipped models under another version name
        entry["artifact"] = str(SHIPPED["default"].parent / entry["artifact"])
        entry["version"] = "candidate"
    candidate = tmp_path / "candidate.json"
    candidate.write_text(json.dumps(shipped))
    few = tmp_path / "probes.jsonl"
    few.write_text("".join(PROBES_FILE.read_text(encoding="utf-8").splitlines(keepends=True)[:12]))
    args = ["eval", "probes", "--data", str(few), "--registry", str(candidate), "--format", "json", "--device", "cpu"]
    out = CliRunner().invoke(main, [*args, "--profile", "fast"])
    assert out.exit_code == 0, out.output
    (result,) = json.loads(out.output)["profiles"]
    assert result["profile"] == "fast" and result["model_version"] == "candidate"
    refused = CliRunner().invoke(main, args)  # all profiles: which one would it stand in for?
    assert refused.exit_code == 2 and "name the profile it stands in for" in refused.output
