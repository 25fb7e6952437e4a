"""The int8 CPU path (models/engine/int8.py) and how the engine picks its precision (inference.pick_precision).

The issue's gates, on fixed samples: labels the same batched and one at a time on at least 99.5% of
posts; held-out quality no more than 0.5 points below fp32. Speed is measured by
pipeline/devtools/bench_int8.py, never asserted here. The int8 encoders are built once per machine
into the finpulse cache (FINPULSE_CACHE), 9-17 s per artifact the first time.
"""

from __future__ import annotations

import sys

import pytest
import torch

from finpulse.models.artifacts.registry import load_registry
from finpulse.models.engine import int8
from finpulse.models.engine.inference import Enricher, pick_precision, use_bf16
from finpulse.pipeline.devtools.bench_int8 import stability
from finpulse.pipeline.devtools.generator import generate_posts
from finpulse.pipeline.runtime.settings import InferenceSettings

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
needs_onnxruntime = pytest.mark.skipif(sys.version_info < (3, 11), reason="onnxruntime 1.32 needs Python 3.11+")
STABILITY_POSTS = 2000  # the sample size; ~35 s on one core


# -- the choice, without hardware ----------------------------------------------------------------
@pytest.mark.parametrize(("requested", "device", "flags", "expected"), [
    ("auto", "cuda", AVX2_ONLY, "bf16"),
    ("auto", "cuda:1", frozenset(), "bf16"),
    ("auto", "cpu", AVX2_ONLY | {"amx_bf16", "amx_int8"}, "bf16"),
    ("auto", "cpu", AVX2_ONLY | {"avx512f", "avx512_bf16"}, "bf16"),
    ("auto", "cpu", AVX2_ONLY, "fp32"),  # int8 is asked for, never picked (inference.pick_precision says why)
    ("auto", "cpu", AVX2_ONLY | {"avx512f", "avx512_vnni"}, "fp32"),
    ("auto", "cpu", frozenset(), "fp32"),
    ("fp32", "cuda", frozenset(), "fp32"),
    ("bf16", "cpu", AVX2_ONLY, "bf16"),
    ("int8", "cpu", AVX2_ONLY | {"avx512_bf16"}, "int8"),  # as asked; the build says if it cannot be
])
def test_auto_picks_bf16_where_native_else_fp32_and_int8_only_when_asked(requested, device, flags, expected):
    assert pick_precision(requested, device, flags) == expected


def test_int8_on_a_gpu_or_an_unknown_precision_is_refused():
    with pytest.raises(int8.Int8Unavailable, match="runs on the CPU"):
        pick_precision("int8", "cuda", AVX2_ONLY)
    with pytest.raises(ValueError, match="auto, fp32, bf16, int8"):
        pick_precision("fp8", "cpu", AVX2_ONLY)
    with pytest.raises(ValueError, match="inference precision"):
        use_bf16("int8", "cpu")  # training has no int8 path


def test_the_cli_offers_the_engine_precisions_and_training_no_int8():
    from finpulse.models.engine import inference
    from finpulse.pipeline.cli import options

    assert list(inference.PRECISIONS) == options.PRECISIONS
    assert "int8" not in options.TRAINING_PRECISIONS


def test_int8_that_cannot_be_built_is_a_clear_error_and_auto_never_builds_it(monkeypatch):
    from finpulse.models.engine import inference

    def cannot(loaded, *args, **kwargs):
        raise int8.Int8Unavailable("no int8 here (test)")

    monkeypatch.setattr(inference, "cpu_flags", lambda: AVX2_ONLY)
    monkeypatch.setattr(int8, "int8_encoder", cannot)
    with pytest.raises(int8.Int8Unavailable, match="no int8 here"):
        Enricher(load_registry(), InferenceSettings(precision="int8"))
    enricher = Enricher(load_registry(), InferenceSettings(precision="auto"))  # an AVX2-only CPU: fp32, no build
    assert enricher.precision == "fp32" and not enricher.bf16
    assert enricher.predict(["Apple shares jump 5% after record iPhone sales"])[0].sentiment == "positive"


# -- the int8 encoders (built once per machine) ------------------------------------------------
@pytest.fixture(scope="module")
def int8_engine():
    """The engine as `--precision int8` runs it, as the pipeline calls it (cashtags and gazetteer names
    scored beside the ORG entities)."""
    from finpulse.pipeline.enrich.handler import company_spans

    if sys.version_info < (3, 11):
        pytest.skip("onnxruntime 1.32 needs Python 3.11+")

    enricher = Enricher(load_registry(), InferenceSettings(precision="int8"), mention_finder=company_spans)
    assert enricher.precision == "int8"
    assert enricher.target is not None  # the per-company target model is swapped too
    assert all(isinstance(g.loaded.model.encoder, int8.OrtEncoder) for g in enricher.encoder_groups)
    return enricher


def test_the_ort_encoder_stands_in_for_the_torch_encoder(int8_engine):
    from finpulse.models.artifacts.artifact import load_artifact

    group = next(g for g in int8_engine.groups if "sentiment" in g.tasks)
    loaded = load_artifact(group.loaded.path)
    encoder = group.loaded.model.encoder
    texts = ["Apple shares jump 5% after record iPhone sales", "Fed holds rates",
             "$TSLA recalls 2 million cars over autopilot flaws, stock slides in premarket trading"]
    enc = loaded.tokenizer(texts, truncation=True, max_length=128, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    n = int(mask[1].sum())  # the short post, unpadded
    with torch.inference_mode():
        ref = loaded.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        got = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        alone = encoder(input_ids=ids[1:2, :n], attention_mask=mask[1:2, :n]).last_hidden_state
    assert got.dtype == torch.float32 and got.shape == ref.shape
    real = mask.bool()
    assert torch.nn.functional.cosine_similarity(got[real], ref[real], dim=-1).min() > 0.98
    # alone and padded in a batch: the same integers; only fp32 sums may differ in the last bits
    assert torch.nn.functional.cosine_similarity(alone[0], got[1, :n], dim=-1).min() > 0.9999


def test_the_build_is_cached_once_per_machine_and_recorded(int8_engine):
    from finpulse.models.artifacts.artifact import load_artifact

    for group in int8_engine.encoder_groups:
        folder = int8.build_int8(load_artifact(group.loaded.path))  # the engine built it: found, not rebuilt
        assert folder == group.loaded.model.encoder.path.parent
        assert {p.name for p in folder.iterdir()} == {int8.INT8_FILE, int8.INFO_FILE, ".complete"}  # no scratch
        assert (folder / int8.INT8_FILE).stat().st_size > 2**20
        assert '"per_token": true' in (folder / int8.INFO_FILE).read_text()
        assert not list(folder.parent.glob(f".{folder.name}-*"))  # no half-built folder left behind


def test_labels_do_not_depend_on_the_batch(int8_engine):
    """The gate: sentiment, topic, entity spans and per-company sentiments the same whether a post is
    enriched with the others or alone, on at least 99.5% of a fixed sample of generated posts."""
    texts = [p["text"] for p in generate_posts(STABILITY_POSTS, seed=20261)]
    same = stability(int8_engine, texts)
    for key in ("sentiment", "topic", "entities", "mentions"):
        assert same[key] >= 0.995, f"{key}: only {same[key]:.2%} of the posts got the same labels alone"


@pytest.mark.parametrize(("task", "file"), [("sentiment", "tfns_sentiment_train.csv"),
                                            ("topic", "tfn_topic_train.csv")])
def test_held_out_quality_is_at_most_half_a_point_below_fp32(real_data, int8_engine, task, file):
    from finpulse.models.artifacts.artifact import load_artifact
    from finpulse.models.data import holdout_split, read_task_file
    from finpulse.models.evaluation.evaluate import evaluate
    from finpulse.models.tasks import get_task

    group = next(g for g in int8_engine.groups if task in g.tasks)
    loaded = load_artifact(group.loaded.path)
    spec = get_task(task)
    rows = read_task_file(real_data.path(file), spec)
    tr = loaded.config.training  # the hold-out of `finpulse eval --holdout`: same fraction and seed
    rows = [rows[i] for i in holdout_split(rows, tr)[1]]
    fp32 = evaluate(loaded.model, loaded.tokenizer, rows, spec, "cpu")
    loaded.model.encoder = group.loaded.model.encoder
    got = evaluate(loaded.model, loaded.tokenizer, rows, spec, "cpu")
    for metric in ("accuracy", "macro_f1"):
        assert got[metric] >= fp32[metric] - 0.005, (metric, got[metric], fp32[metric])


@needs_onnxruntime
def test_eval_scores_the_int8_encoder_when_asked(real_data):
    """`finpulse eval --dtype int8` measures what `--precision int8` runs: another encoder than fp32's
    (the per-class figures move), within the quality gate."""
    import json

    from click.testing import CliRunner

    from finpulse.pipeline.cli.main import main

    reports = {}
    for dtype in ("fp32", "int8"):
        out = CliRunner().invoke(main, ["eval", "sentiment", "--data", str(real_data.path("tfns_sentiment_train.csv")),
                                        "--holdout", "--dtype", dtype])
        assert out.exit_code == 0, out.output
        reports[dtype] = json.loads(out.output.strip().splitlines()[-1])
    assert reports["int8"]["dtype"] == "int8"
    assert reports["int8"]["per_class"] != reports["fp32"]["per_class"]
    assert reports["int8"]["accuracy"] >= reports["fp32"]["accuracy"] - 0.005
