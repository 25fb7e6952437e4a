"""What story de-duplication and company linking cost: throughput beside the models, and memory after a week.

    finpulse bench-stories --data ../shared/data

prints one JSON object (docs/ALERTS.md, "Real text", quotes it):

* `cost`: posts/s of the enrichment models and of linking + de-dup on the same real texts, in the
  same process, and linking + de-dup time as a share of the model time per post (the target is
  at most 10%: they run in the same worker, one after the other); de-dup post by post
  (`StoryIndex.assign`, what the Beam step calls) and in batches of 256 (`assign_many`);
* `week`: a simulated week of traffic (`--per-day` posts a day, real texts with copies) through
  one StoryIndex: live entries, traced memory of the index and bytes per live entry;
* `dedup`: precision/recall on copies made from real headlines (pipeline/devtools/copies.py).

`finpulse bench` also reports the `cost` figures on its generated posts.
"""

from __future__ import annotations

import csv
import gc
import json
import random
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path


def real_texts(data: Path, limit: int | None = None) -> list[str]:
    """Real tweets (TFNS) and headlines (SEntFiN), shuffled with a fixed seed."""
    with open(data / "tfns_sentiment_train.csv", encoding="utf-8", newline="") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    texts += [
        json.loads(line)["text"]
        for line in (data / "sentfin_entity_train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    random.Random(0).shuffle(texts)
    return texts[:limit] if limit else texts


def cost(texts: list[str], device: str = "cpu", precision: str = "auto") -> dict:
    """Models vs linking + de-dup on the same texts, measured here and now."""
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.pipeline.enrich.companies import company_mentions, load_gazetteer
    from finpulse.pipeline.enrich.stories import StoryIndex
    from finpulse.pipeline.runtime.settings import InferenceSettings

    enricher = Enricher(load_registry(), InferenceSettings(device=device, precision=precision))
    enricher.predict(texts[:32])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    preds = enricher.predict(texts)
    model_s, model_cpu = time.perf_counter() - t0, time.process_time() - c0
    gaz = load_gazetteer()
    t0, c0 = time.perf_counter(), time.process_time()
    for text, pred in zip(texts, preds, strict=True):
        company_mentions(text, pred.entities, gaz)
    link_s, link_cpu = time.perf_counter() - t0, time.process_time() - c0
    index = StoryIndex()
    start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, text in enumerate(texts):
        index.assign(f"p{i}", text, start + timedelta(seconds=20 * i))
    dedup_s, dedup_cpu = time.perf_counter() - t0, time.process_time() - c0
    # the same posts through the batch API, 256 a call (a bundle's worth): signatures vectorised per batch
    batched = StoryIndex()
    ids = [f"p{i}" for i in range(len(texts))]
    published = [start + timedelta(seconds=20 * i) for i in range(len(texts))]
    c0 = time.process_time()
    for lo in range(0, len(texts), 256):
        batched.assign_many(ids[lo : lo + 256], texts[lo : lo + 256], published[lo : lo + 256])
    dedup_batch_cpu = time.process_time() - c0
    n = len(texts)
    # CPU seconds (all threads of this process) as well as wall time: on a shared machine wall time
    # swings with the neighbours' load, CPU time is what the work costs
    return {
        "n": n,
        "models_posts_per_s": round(n / model_s, 1),
        "linking_posts_per_s": round(n / link_s, 1),
        "dedup_posts_per_s": round(n / dedup_s, 1),
        "models_cpu_ms_per_post": round(1000 * model_cpu / n, 3),
        "linking_cpu_ms_per_post": round(1000 * link_cpu / n, 3),
        "dedup_cpu_ms_per_post": round(1000 * dedup_cpu / n, 3),
        "dedup_batch_cpu_ms_per_post": round(1000 * dedup_batch_cpu / n, 3),
        "linking_dedup_share_of_model_time": round((link_s + dedup_s) / model_s, 4),
        "linking_dedup_share_of_model_cpu": round((link_cpu + dedup_cpu) / model_cpu, 4),
    }


def week(texts: list[str], per_day: int = 20000, copy_share: float = 0.3, seed: int = 1) -> dict:
    """A week of posts through one index (30% of them copies of a post from the last hours)."""
    from finpulse.pipeline.devtools.copies import copy_of
    from finpulse.pipeline.enrich.stories import StoryIndex

    rng = random.Random(seed)
    start = datetime(2026, 1, 5, tzinfo=timezone.utc)
    total = per_day * 7
    step = 86400 / per_day
    feed = []
    recent: list[str] = []
    for i in range(total):
        if recent and rng.random() < copy_share:
            text = copy_of(rng.choice(recent[-500:]), rng)
        else:
            text = f"{texts[i % len(texts)]}" + ("" if i < len(texts) else f" ({i // len(texts)})")
            recent.append(text)
        feed.append(text)
    gc.collect()
    tracemalloc.start()
    index = StoryIndex()
    t0 = time.perf_counter()
    for i, text in enumerate(feed):
        index.assign(f"p{i}", text, start + timedelta(seconds=step * i))
    elapsed = time.perf_counter() - t0
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "posts": total,
        "per_day": per_day,
        "window_days": index.config.window.days,
        "live_entries": len(index),
        "index_mib": round(current / 2**20, 1),
        "peak_mib": round(peak / 2**20, 1),
        "bytes_per_live_entry": round(current / max(1, len(index))),
        "posts_per_s_traced": round(total / elapsed, 1),
    }


def run(data: Path, n: int = 2000, per_day: int = 20000, device: str = "cpu") -> dict:
    """The three sections: `cost` on the first `n` real texts, a `week` at `per_day` posts a day, `dedup` P/R."""
    from finpulse.pipeline.devtools.copies import measure_dedup

    texts = real_texts(data)
    headlines = [
        json.loads(line)["text"]
        for line in (data / "sentfin_entity_train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return {
        "cost": cost(texts[:n], device),
        "week": week(texts, per_day),
        "dedup": {
            "sentfin_3000x2": measure_dedup(headlines[:3000], 2),
            "tweets_and_headlines_3000x2": measure_dedup(texts[:3000], 2),
        },
    }
