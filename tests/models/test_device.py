"""GPU-side decisions that can be checked anywhere: batch budget from free memory, pinned copies,
and one shared model per machine (Beam's multi-process shared model, run here on the CPU)."""

from __future__ import annotations

import apache_beam as beam
import torch
from apache_beam.ml.inference.base import RunInference
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from finpulse.models.engine.device import (
    GPU_BUDGET_CAP,
    GPU_BUDGET_FLOOR,
    activation_bytes_per_token,
    to_device,
    token_budget_for_memory,
)
from finpulse.pipeline.enrich.handler import FinpulseModelHandler
from finpulse.pipeline.runtime.settings import InferenceSettings

MINILM = dict(hidden=384, intermediate=1536, heads=12, max_length=128)


def test_activation_estimate_for_minilm_in_bf16():
    assert activation_bytes_per_token(**MINILM, dtype_bytes=2) == 2 * 2 * (6 * 384 + 2 * 1536 + 12 * 128) == 27_648


def test_budget_follows_free_memory_within_floor_and_cap():
    per_token = activation_bytes_per_token(**MINILM, dtype_bytes=2)
    assert token_budget_for_memory(2 * 1024**3, per_token) == 38_836  # 2 GiB free, half of it for activations
    assert token_budget_for_memory(80 * 1024**3, per_token) == GPU_BUDGET_CAP
    assert token_budget_for_memory(10 * 1024**2, per_token) == GPU_BUDGET_FLOOR
    assert token_budget_for_memory(2 * 1024**3, per_token, fraction=0.25) == 19_418


def test_host_tensors_stay_put_on_cpu():
    t = torch.ones(2, 3)
    assert to_device(t, torch.device("cpu")) is t


def test_one_model_per_machine_by_default_on_gpu_only():
    assert FinpulseModelHandler(settings=InferenceSettings(device="cuda")).share_model_across_processes()
    assert not FinpulseModelHandler(settings=InferenceSettings(device="cpu")).share_model_across_processes()
    assert FinpulseModelHandler(settings=InferenceSettings(device="cpu"), large_model=True).share_model_across_processes()


def test_shared_model_across_processes_gives_the_same_predictions():
    """The GPU default (one model served to every worker process) exercised on the CPU: Beam
    loads the model in a separate server process and the workers call it through a proxy."""
    texts = ["Boeing shares plunge after FAA grounds the 737 MAX.", "Apple beats estimates and raises its dividend."]
    direct = FinpulseModelHandler(settings=InferenceSettings(precision="fp32"))
    expected = [(r.inference.sentiment, r.inference.topic) for r in direct.run_inference(texts, direct.load_model())]
    shared = FinpulseModelHandler(settings=InferenceSettings(precision="fp32"), large_model=True)
    with beam.Pipeline(runner=FnApiRunner()) as p:
        got = (p | beam.Create(texts) | RunInference(shared)
               | beam.Map(lambda r: (r.inference.sentiment, r.inference.topic)))
        assert_that(got, equal_to(expected))
    assert expected[0][0] == "negative" and expected[1][0] == "positive"
