"""The benchmark's baseline is the real stock Beam handler and agrees with ours on labels."""

import pytest

from finpulse.pipeline.devtools.generator import generate_posts

pytestmark = pytest.mark.slow


def test_baseline_models_predict_what_our_engine_predicts(tmp_path):
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.pipeline.devtools.stock_beam import export_hf_models, install_tensorflow_shim

    install_tensorflow_shim()
    from transformers import pipeline

    texts = [p["text"] for p in generate_posts(12, seed=8)]
    ours = Enricher(load_registry()).predict(texts)
    models = export_hf_models(tmp_path)
    for task in ("sentiment", "topic"):
        hf_task, model, tok = models[task]
        got = [r["label"] for r in pipeline(hf_task, model=model, tokenizer=tok)(texts)]
        assert got == [getattr(p, task) for p in ours]


def test_bench_baseline_runs_the_stock_beam_handler():
    from finpulse.pipeline.devtools.stock_beam import run_baseline

    result = run_baseline([p["text"] for p in generate_posts(6, seed=9)])
    assert result["baseline_posts_per_s"] > 0
    import sys

    assert "apache_beam.ml.inference.huggingface_inference" in sys.modules  # the stock handler really ran


def test_the_separate_models_registry_loads_with_the_per_company_head_beside_ner(tmp_path):
    """`finpulse bench` compares the shared encoder with one model per task; the per-company head
    must stay with NER (it scores the NER pass's spans). The bench failed here after #14."""
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.pipeline.devtools.bench import _separate_registry

    reg = load_registry(str(_separate_registry(tmp_path)))
    paths = {t: reg.task(t).artifact_path for t in ("sentiment", "topic", "ner", "entity_sentiment")}
    assert len({paths["sentiment"], paths["topic"], paths["ner"]}) == 3
    assert paths["entity_sentiment"] == paths["ner"]
    assert reg.entity_target.artifact_path == load_registry().entity_target.artifact_path  # its own small model


def test_bench_versus_times_two_registries_taking_turns_through_the_cli(tmp_path, monkeypatch):
    """`finpulse bench --versus REGISTRY`: both engines on the same real-shaped texts, each timed `--reps`
    times; the ratio is the other's median CPU per post over ours (figures checked for consistency, not speed)."""
    import json

    from click.testing import CliRunner

    from finpulse.models.artifacts.registry import SHIPPED, load_registry
    from finpulse.pipeline.cli.main import main

    shipped = json.loads(SHIPPED["default"].read_text())
    for entry in shipped.values():  # the same models under another version name: which side is which
        entry["artifact"] = str(SHIPPED["default"].parent / entry["artifact"])
        entry["version"] = "before"
    before = tmp_path / "before.json"
    before.write_text(json.dumps(shipped))
    # bench sets FINPULSE_REGISTRY for the processes it starts: undone after the test (monkeypatch restores it)
    monkeypatch.setenv("FINPULSE_REGISTRY", "default")
    out = CliRunner().invoke(main, ["bench", "--profile", "fast", "--versus", str(before), "--reps", "2", "--n", "12",
                                    "--quality-data", str(tmp_path), "--device", "cpu", "--precision", "fp32",
                                    "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    assert got["texts"] == 12 and got["reps"] == 2 and got["precision"] == "fp32"  # generated posts: no data here
    assert got["ours"]["model_version"] == load_registry("default").model_version
    assert got["versus"]["model_version"] == "before"  # one version for every task
    for side in ("ours", "versus"):
        assert len(got[side]["core_ms_per_post"]) == len(got[side]["posts_per_s"]) == 2
        runs = got[side]["core_ms_per_post"]
        assert min(runs) <= got[side]["median_core_ms_per_post"] <= max(runs)
    medians = got["versus"]["median_core_ms_per_post"], got["ours"]["median_core_ms_per_post"]
    assert got["throughput_ratio"] == round(medians[0] / medians[1], 3)
