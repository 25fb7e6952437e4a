"""The CUDA code paths, run where a GPU exists (on the lent GPU machine; see docs/GPU.md).

CI machines have no GPU, so these skip there; the decisions they exercise (budget arithmetic, host
tensors, the shared-model path) are also tested on the CPU in test_device.py. Here we check what only
a GPU can show: pinned non-blocking copies land intact, the budget follows the card's real free
memory, and bf16 GPU predictions agree with the fp32 CPU reference.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
import torch
from apache_beam.ml.inference.base import RunInference
from apache_beam.testing.util import assert_that, equal_to

from finpulse.models.artifacts.registry import DEFAULT_REGISTRY, load_registry
from finpulse.models.engine.device import GPU_BUDGET_CAP, GPU_BUDGET_FLOOR, to_device
from finpulse.models.engine.inference import Enricher
from finpulse.pipeline.devtools.generator import generate_posts
from finpulse.pipeline.enrich.handler import FinpulseModelHandler
from finpulse.pipeline.runtime.settings import InferenceSettings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)")

TEXTS = [p["text"] for p in generate_posts(400, seed=31)] + [
    "Boeing shares plunge after FAA grounds the 737 MAX.",
    "Apple beats estimates and raises its dividend.",
    "word " * 3000,  # many windows
]


@pytest.fixture(scope="module")
def cpu_fp32():
    return Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings(device="cpu", precision="fp32")).predict(TEXTS)


@pytest.fixture(scope="module")
def gpu():
    return Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings(device="cuda"))


def test_pinned_non_blocking_copies_arrive_intact():
    host = torch.arange(4096 * 128, dtype=torch.long).reshape(4096, 128)
    on_gpu = to_device(host, torch.device("cuda"))
    assert on_gpu.device.type == "cuda"
    torch.cuda.synchronize()
    assert torch.equal(on_gpu.cpu(), host)


def test_budget_is_sized_from_the_cards_free_memory(gpu):
    free, _ = torch.cuda.mem_get_info()
    budget = gpu.groups[0].token_budget
    assert GPU_BUDGET_FLOOR <= budget <= GPU_BUDGET_CAP
    if free > 8 * 1024**3:  # any data-centre card: activations for the cap fit in half the free memory
        assert budget == GPU_BUDGET_CAP


def test_bf16_gpu_predictions_agree_with_the_fp32_cpu_reference(gpu, cpu_fp32):
    got = gpu.predict(TEXTS)
    assert len(got) == len(cpu_fp32)
    sentiment = np.mean([a.sentiment == b.sentiment for a, b in zip(got, cpu_fp32, strict=False)])
    topic = np.mean([a.topic == b.topic for a, b in zip(got, cpu_fp32, strict=False)])
    ents = np.mean([{(e.start, e.end, e.type) for e in a.entities} == {(e.start, e.end, e.type) for e in b.entities}
                    for a, b in zip(got, cpu_fp32, strict=False)])
    assert sentiment >= 0.97 and topic >= 0.97 and ents >= 0.95, (sentiment, topic, ents)
    worst = max(abs(a.sentiment_score - b.sentiment_score) for a, b in zip(got, cpu_fp32, strict=False))
    assert worst < 0.1


def test_gpu_predictions_do_not_depend_on_batch_composition(gpu):
    together = gpu.predict(TEXTS[:64])
    alone = [gpu.predict([t])[0] for t in TEXTS[:64]]
    assert [p.sentiment for p in together] == [p.sentiment for p in alone]
    assert max(abs(a.sentiment_score - b.sentiment_score) for a, b in zip(together, alone, strict=False)) < 0.05


def test_the_beam_handler_shares_one_gpu_model_by_default():
    handler = FinpulseModelHandler(settings=InferenceSettings(device="cuda"))
    assert handler.share_model_across_processes()
    texts = TEXTS[-3:-1]
    with beam.Pipeline() as p:
        got = p | beam.Create(texts) | RunInference(handler) | beam.Map(lambda r: r.inference.sentiment)
        assert_that(got, equal_to(["negative", "positive"]))
