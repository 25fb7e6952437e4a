"""Engine throughput by precision path and batch cap, with label agreement against fp32 on the CPU.

    finpulse bench-precision --device cuda --n 40000 > docs/bench/gpu-engine-h100-2026-11-22.txt

Kept beside `finpulse bench` because it answers one question that bench does not: on a given
GPU, do bf16 weights, bf16 autocast, fp32 or larger batches win (docs/bench/gpu-engine-h100-2026-11-22.txt).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

from finpulse.models.artifacts.registry import load_registry
from finpulse.models.engine.inference import Enricher, Prediction
from finpulse.pipeline.devtools.generator import generate_posts
from finpulse.pipeline.runtime.settings import InferenceSettings


def _autocast_batch256(e: Enricher) -> None:
    """The older path: fp32 weights under bf16 autocast, 256 texts per pass (the comparison's baseline)."""
    e.bf16 = e.autocast = True
    e.settings = InferenceSettings(**{**e.settings.__dict__, "max_batch": 256})


def _agreement(preds: list[Prediction], ref: list[Prediction], key: Callable[[Prediction], object]) -> float:
    return round(sum(key(a) == key(b) for a, b in zip(preds, ref, strict=False)) / len(ref), 4)


def compare_precisions(device: str, n: int) -> dict:
    texts = [p["text"] for p in generate_posts(n, seed=7)]
    ref = Enricher(load_registry(), InferenceSettings(device="cpu", precision="fp32")).predict(texts[:1000])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out: dict = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "n": n, "torch": torch.__version__}
    variants: list[tuple[str, InferenceSettings, Callable[[Enricher], None] | None]] = [
        ("autocast_bf16_batch256 (before)", InferenceSettings(device=device, precision="fp32"), _autocast_batch256),
        ("default (bf16 weights on CUDA)", InferenceSettings(device=device), None),
        ("fp32", InferenceSettings(device=device, precision="fp32"), None),
        ("default, batch cap 4096", InferenceSettings(device=device, max_batch=4096), None),
    ]
    for name, settings, patch in variants:
        e = Enricher(load_registry(), settings)
        if patch:
            patch(e)
        e.predict(texts[:512])
        sync()
        t = time.perf_counter()
        preds = e.predict(texts)
        sync()
        out[name] = {"posts_per_s": round(n / (time.perf_counter() - t), 1),
                     "sentiment_agree_vs_cpu_fp32": _agreement(preds, ref, lambda p: p.sentiment),
                     "topic_agree": _agreement(preds, ref, lambda p: p.topic),
                     "entities_agree": _agreement(preds, ref, lambda p: sorted((x.start, x.end, x.type) for x in p.entities))}
        print(name, out[name], file=sys.stderr, flush=True)
    return out
