"""The static-int8 CPU path (models/engine/int8.py) beside fp32 and bf16: engine posts/s, label stability, quality.

    finpulse bench-int8 --data ../shared/data > int8.json

prints one JSON object, all figures measured in this run, on this machine:

* `posts_per_s`: the enrichment engine end to end (`Enricher.predict`, cashtag and gazetteer spans
  scored as the pipeline does) on the same generator posts, per path: `torch_fp32` (the engine on a
  CPU without native bf16), `ort_fp32` (the same weights exported to ONNX, no quantisation),
  `ort_int8` (this path), `ort_int8_per_tensor` (the same without per-token scaling: one static
  range per tensor), `torch_bf16` (only where the CPU has AVX512-BF16 or AMX). Every path runs
  `--reps` times, the paths taking turns so drift in the machine's load hits them alike; the median
  counts, `over_torch_fp32` divides it by fp32's, and `runs` keeps every figure with the 1-minute
  load average after it (`--reps 0` skips the timing). `core_ms_per_post` (process CPU time) and
  `torch_fp32_core_ms_over` (fp32's core time over each path's) hold up better when other jobs
  share the machine; with `--threads 1` they compare the paths one core each;
* `stability`: per path checked, the share of posts whose sentiment, topic and entity spans (and
  per-company sentiments) are the same when the posts are enriched as one batch and one at a time;
* `quality`: held-out scores as `finpulse eval --holdout` computes them (sentiment and topic: the
  seeded 10% hold-out of the training file; NER: the CoNLL-2003 and FiNER-ORD dev files; per-company
  sentiment through the engine: the entity hold-out), fp32 and each int8 variant, with deltas in
  points and the share of labels equal to fp32's, also when calibrated on generator posts or on
  training text (its training part) instead of the built-in text;
* `build`: the one-time cost of building the quantised models into an empty cache, and their sizes;
* `cpu`: the CPU features the paths depend on, and `ort_u8s8_kernel`: whether ONNX Runtime's int8
  kernel here adds u8 x s8 pairs exactly (VNNI or AMX) or in saturating 16 bits (AVX2, AVX-512 without
  VNNI). ORT chooses its kernels from CPUID at start-up and has no switch to force AVX2 ones, so the
  speed of this path on an AVX2-only CPU cannot be measured here: `avx2_estimate` scales this run's
  int8 GEMM time by the AVX2 / native int8 GEMM ratio that fbgemm (which does have such a switch,
  FBGEMM_ENABLE_INSTRUCTIONS) shows on this CPU. An estimate, labelled as one.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finpulse.models.artifacts.artifact import LoadedModel
from finpulse.models.engine import int8

PATHS = ("torch_fp32", "ort_fp32", "ort_int8", "ort_int8_per_tensor", "torch_bf16")
RECIPES = {"ort_int8": int8.Recipe(), "ort_int8_per_tensor": int8.Recipe(per_token=False)}


def _texts(n: int, seed: int) -> list[str]:
    from finpulse.pipeline.devtools.generator import generate_posts

    return [p["text"] for p in generate_posts(n, seed=seed)]


def engine(path: str, registry: str | None = None, cache: Path | None = None, threads: int | None = None,
           scratch: Path | None = None, mention_finder: Callable[[str], Any] | None = None) -> Any:
    """An Enricher on one of PATHS. The ORT ones start from fp32 and swap every encoder (shared groups
    and target model) themselves, so that the recipe and the cache (timed by `build_cost`) are this run's."""
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.pipeline.runtime.settings import InferenceSettings

    precision = "bf16" if path == "torch_bf16" else "fp32"
    enricher = Enricher(load_registry(registry), InferenceSettings(precision=precision, threads=threads),
                        mention_finder=mention_finder)
    if not path.startswith("ort_"):
        return enricher
    where = Path(tempfile.mkdtemp(prefix="fp32-onnx-", dir=scratch))

    def ort_encoder(loaded: LoadedModel) -> int8.OrtEncoder:
        if path in RECIPES:
            return int8.int8_encoder(loaded, threads, RECIPES[path], cache)
        out = int8.export_encoder(loaded.model.encoder, where / f"{Path(loaded.path).name}.onnx")  # ort_fp32
        return int8.OrtEncoder(out, loaded.model.encoder.config, threads)

    for group in enricher.encoder_groups:
        group.loaded.model.encoder = ort_encoder(group.loaded)
    return enricher


def throughput(enrichers: dict[str, Any], texts: list[str], reps: int) -> dict:
    """Median posts/s per path; the paths take turns, starting one later each round."""
    for e in enrichers.values():
        e.predict(texts[:64])  # warm-up: first-call allocations, ORT's first run
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in enrichers}
    names = list(enrichers)
    for r in range(reps):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t, cpu = time.perf_counter(), time.process_time()
            enrichers[name].predict(texts)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            load = round(os.getloadavg()[0], 2)
            runs[name].append((round(len(texts) / wall, 1), round(1000 * cpu / len(texts), 2), load))
            print(f"bench_int8: {name} {runs[name][-1]} (posts/s, core-ms/post, load)", file=sys.stderr)
    return {"posts_per_s": {k: statistics.median(p for p, _, _ in v) for k, v in runs.items()},
            "core_ms_per_post": {k: statistics.median(c for _, c, _ in v) for k, v in runs.items()},
            "runs": {k: [{"posts_per_s": p, "core_ms_per_post": c, "load_1min": ld} for p, c, ld in v]
                     for k, v in runs.items()}}


def label_keys(pred: Any) -> dict[str, object]:
    """What must not change with the batch: labels and entity spans (scores may move in the last digits)."""
    return {"sentiment": pred.sentiment, "topic": pred.topic,
            "entities": tuple(sorted((e.start, e.end, e.type) for e in pred.entities)),
            "mentions": tuple(sorted((m.start, m.end, m.sentiment) for m in pred.mentions or []))}


def stability(enricher: Any, texts: Sequence[str]) -> dict:
    """Share of texts whose labels are identical enriched as one batch and one at a time."""
    batched = [label_keys(p) for p in enricher.predict(list(texts))]
    single = [label_keys(enricher.predict([t])[0]) for t in texts]
    out: dict[str, Any] = {"n": len(texts)}
    for key in batched[0]:
        out[key] = round(sum(a[key] == b[key] for a, b in zip(batched, single, strict=True)) / len(texts), 5)
    out["all_three"] = round(sum(all(a[k] == b[k] for k in ("sentiment", "topic", "entities"))
                                 for a, b in zip(batched, single, strict=True)) / len(texts), 5)
    return out


# -- quality -----------------------------------------------------------------------------------
def heldout_sets(loaded: Any, data: Path) -> dict[str, tuple[Any, list]]:
    """The held-out sets `finpulse eval --holdout` and the model cards score (same split, seed and fraction)."""
    from finpulse.models.data import holdout_split, read_classification_csv, read_conll
    from finpulse.models.tasks import get_task

    tr = loaded.config.training
    sets: dict[str, tuple[Any, list]] = {}
    for task, name in (("sentiment", "tfns_sentiment_train.csv"), ("topic", "tfn_topic_train.csv")):
        spec = get_task(task)
        rows = read_classification_csv(data / name, spec)
        _, held = holdout_split(rows, tr)
        sets[f"{task}/heldout"] = (spec, [rows[i] for i in held])
    spec = get_task("ner")
    for name in ("conll2003_dev.txt", "finer_ord_dev.txt"):
        sets[f"ner/{Path(name).stem}"] = (spec, read_conll(data / name, spec))
    return sets


def training_texts(loaded: Any, data: Path, n: int, seed: int = 1) -> list[str]:
    """Training text for the calibration comparison: the training part only, never a held-out row."""
    from finpulse.models.data import holdout_split, read_classification_csv, read_conll
    from finpulse.models.tasks import get_task

    tr = loaded.config.training
    out: list[str] = []
    for task, name in (("sentiment", "tfns_sentiment_train.csv"), ("topic", "tfn_topic_train.csv")):
        rows = read_classification_csv(data / name, get_task(task))
        train, _ = holdout_split(rows, tr)
        out += [rows[i].text for i in train]
    for name in ("conll2003_train.txt", "finer_ord_train.txt"):
        out += [" ".join(s.tokens) for s in read_conll(data / name, get_task("ner"))]
    random.Random(seed).shuffle(out)
    return out[:n]


def predictions(loaded: Any, spec: Any, rows: list) -> list:
    """Per row, the predicted label index (classes) or word tags (NER), as models/evaluation/evaluate.py
    predicts them."""
    from finpulse.models.encoding import encode_sentences, encode_texts
    from finpulse.models.evaluation.evaluate import predict_logits
    from finpulse.models.tasks import TaskKind

    tok = loaded.tokenizer
    if spec.kind is TaskKind.SEQUENCE:
        examples = encode_texts(tok, [r.text for r in rows], [r.label for r in rows], 128)
        return [int(lg.argmax()) for lg in predict_logits(loaded.model, examples, spec, tok.pad_token_id, "cpu")]
    examples, firsts = encode_sentences(tok, rows, spec.labels, 512)
    logits = predict_logits(loaded.model, examples, spec, tok.pad_token_id, "cpu")
    out = []
    for lg, first in zip(logits, firsts, strict=True):
        best = lg.argmax(-1).tolist()
        out.append([spec.labels[best[f]] if f >= 0 else "O" for f in first])
    return out


def report(spec: Any, rows: list, preds: list) -> dict[str, float]:
    """accuracy and macro-F1 (classes) or entity F1 (NER), by the project's scorers."""
    from finpulse.models.evaluation.metrics import classification_report, entity_report
    from finpulse.models.tasks import TaskKind

    if spec.kind is TaskKind.SEQUENCE:
        r = classification_report([row.label for row in rows], preds, spec.labels)
        return {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}
    r = entity_report([[spec.labels[t] for t in row.tags] for row in rows], preds)
    return {"f1": r["f1"]}


def agreement(preds: list, ref: list) -> float:
    """Share of predictions (NER: of words) equal to the reference's."""
    if preds and isinstance(preds[0], list):
        pairs = [(a, b) for p, r in zip(preds, ref, strict=True) for a, b in zip(p, r, strict=True)]
    else:
        pairs = list(zip(preds, ref, strict=True))
    return round(sum(a == b for a, b in pairs) / max(1, len(pairs)), 4)


def deltas(new: dict, ref: dict) -> dict[str, dict[str, float]]:
    """new - ref, in points (percentage points of accuracy / F1)."""
    return {k: {m: round(100 * (v - ref[k][m]), 2) for m, v in d.items()} for k, d in new.items()}


def entity_sentiment_scores(enricher: Any, data: Path) -> dict[str, dict[str, float]]:
    """Per-company sentiment on the entity hold-out, through the engine (`finpulse eval entity-sentiment --holdout`)."""
    from finpulse.models.artifacts.artifact import read_config
    from finpulse.models.data import holdout_split
    from finpulse.models.evaluation.evaluate import evaluate_entity_sentiment
    from finpulse.models.spans import read_entity_jsonl

    path = enricher.registry.entity_sentiment.artifact_path
    training = read_config(path).training.get("entity_sentiment", {})
    out = {}
    for name in ("sentfin_entity_train.jsonl", "finentity_train.jsonl"):
        docs = read_entity_jsonl(data / name)
        _, held = holdout_split(docs, training)
        report = evaluate_entity_sentiment(enricher, [docs[i] for i in held])
        key = f"entity_sentiment/{Path(name).stem}_heldout"
        out[key] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
    return out


def quality(data: Path, cache: Path, registry: str | None, threads: int | None, scratch: Path,
            calibration_sources: bool = True) -> dict:
    """fp32 and each int8 variant on the held-out sets: scores, deltas in points, and label agreement with fp32."""
    from finpulse.models.artifacts.artifact import load_artifact
    from finpulse.models.artifacts.registry import load_registry

    loaded = load_artifact(load_registry(registry).sentiment.artifact_path)
    sets = heldout_sets(loaded, data)
    fp32 = loaded.model.encoder
    ref_preds = {k: predictions(loaded, spec, rows) for k, (spec, rows) in sets.items()}
    ref = {k: report(spec, rows, ref_preds[k]) for k, (spec, rows) in sets.items()}
    out: dict[str, Any] = {"n": {k: len(rows) for k, (_, rows) in sets.items()}, "fp32": ref}
    variants: list[tuple[str, int8.Recipe, Path, list[str] | None]] = [
        (name, recipe, cache, None) for name, recipe in RECIPES.items()]
    if calibration_sources:
        n = int8.Recipe().calibration_texts
        variants += [("ort_int8_calibrated_on_generator_posts", int8.Recipe(), scratch / "on-generator", _texts(n, 5)),
                     ("ort_int8_calibrated_on_training_text", int8.Recipe(), scratch / "on-training-text",
                      training_texts(loaded, data, n))]
    for name, recipe, where, texts in variants:
        loaded.model.encoder = fp32
        folder = int8.build_int8(loaded, recipe, where, texts)
        loaded.model.encoder = int8.OrtEncoder(folder / int8.INT8_FILE, fp32.config, threads)
        preds = {k: predictions(loaded, spec, rows) for k, (spec, rows) in sets.items()}
        got = {k: report(spec, rows, preds[k]) for k, (spec, rows) in sets.items()}
        out[name] = {"scores": got, "minus_fp32_points": deltas(got, ref),
                     "labels_same_as_fp32": {k: agreement(preds[k], ref_preds[k]) for k in sets}}
    loaded.model.encoder = fp32
    if (data / "sentfin_entity_train.jsonl").is_file():
        es = {p: entity_sentiment_scores(engine(p, registry, cache, threads), data) for p in ("torch_fp32", "ort_int8")}
        out["entity_sentiment"] = {**es, "int8_minus_fp32_points": deltas(es["ort_int8"], es["torch_fp32"])}
    return out


# -- the machine -------------------------------------------------------------------------------
def u8s8_kernel() -> str:
    """Which kind of int8 GEMM kernel ONNX Runtime uses here, told by arithmetic: with A = 255 and B = 127
    every pair of products sums to 64770, which a 16-bit saturating kernel (vpmaddubsw) clips to 32767."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k = 64
    b = numpy_helper.from_array(np.full((k, 16), 127, np.int8), "B")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "probe",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [16, k])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [16, 16])], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = int(session.run(None, {"A": np.full((16, k), 255, np.uint8)})[0][0, 0])
    if y == 255 * 127 * k:
        return "exact u8 x s8 sums: a VNNI (or AMX) kernel, which AVX2-only CPUs lack"
    return f"16-bit saturating pair sums ({y} instead of {255 * 127 * k}): the AVX2 / AVX-512 core kernel"


_FBGEMM_PROBE = """
import time, warnings, torch
warnings.simplefilter("ignore")
torch.set_num_threads({threads})
from torch.ao.quantization import quantize_dynamic
m = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(384, 1536)), {{torch.nn.Linear}}, dtype=torch.qint8)
x = torch.randn(4096, 384)
with torch.inference_mode():
    for _ in range(3): m(x)
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10): m(x)
        best = min(best, time.perf_counter() - t)
print(10 * 2 * 4096 * 384 * 1536 / best / 1e9)
"""


def fbgemm_avx2_ratio(threads: int) -> dict:
    """int8 GEMM GOPS of fbgemm with its native kernels and restricted to AVX2 (best of 5, alternated twice)."""
    runs: dict[str, list[float]] = {"native": [], "avx2": []}
    for _ in range(2):
        for name, env in (("native", {}), ("avx2", {"FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"})):
            out = subprocess.run([sys.executable, "-c", _FBGEMM_PROBE.format(threads=threads)], capture_output=True,
                                 text=True, env={**os.environ, **env}, check=True)
            runs[name].append(float(out.stdout.strip()))
    native, avx2 = max(runs["native"]), max(runs["avx2"])
    return {"native_gops": round(native, 1), "avx2_gops": round(avx2, 1), "avx2_over_native": round(avx2 / native, 3)}


def int8_gemm_share(cache: Path, registry: str | None, threads: int | None, texts: list[str]) -> float:
    """Share of the int8 encoder's ORT kernel time spent in its integer GEMMs (MatMulIntegerToFloat)."""
    import onnxruntime as ort

    from finpulse.models.artifacts.artifact import load_artifact
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.batching import plan_batches

    loaded = load_artifact(load_registry(registry).sentiment.artifact_path)
    folder = int8.build_int8(loaded, cache=cache)
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(cache / "profile")
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    session = ort.InferenceSession(str(folder / int8.INT8_FILE), opts, providers=["CPUExecutionProvider"])
    ids = loaded.tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    for idx in plan_batches([len(x) for x in ids], 8192, 256):
        width = max(len(ids[i]) for i in idx)
        a = np.zeros((len(idx), width), np.int64)
        for row, i in enumerate(idx):
            a[row, : len(ids[i])] = ids[i]
        session.run(None, {"input_ids": a, "attention_mask": (a != 0).astype(np.int64)})
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    total = sum(e["dur"] for e in kernels)
    return round(sum(e["dur"] for e in kernels if e["args"]["op_name"] == "MatMulIntegerToFloat") / total, 3)


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_cost(registry: str | None, cache: Path) -> dict:
    """Build every int8 encoder the engine needs into an empty cache; time and size each."""
    from finpulse.models.artifacts.artifact import load_artifact
    from finpulse.models.artifacts.registry import load_registry

    reg = load_registry(registry)
    paths = sorted({str(t.artifact_path) for t in reg.all_tasks.values()})
    out: dict[str, Any] = {}
    for path in paths:
        loaded = load_artifact(path)
        t = time.perf_counter()
        folder = int8.build_int8(loaded, cache=cache)
        seconds = time.perf_counter() - t
        info = json.loads((folder / int8.INFO_FILE).read_text())
        with tempfile.TemporaryDirectory() as tmp:
            fp32_bytes = int8.export_encoder(loaded.model.encoder, Path(tmp) / "fp32.onnx").stat().st_size
        mib = 2**20
        out[Path(path).name] = {"seconds": round(seconds, 1), "export_s": info["export_s"],
                                "quantise_s": info["quantise_s"], "int8_onnx_mib": round(info["bytes"] / mib, 1),
                                "fp32_onnx_mib": round(fp32_bytes / mib, 1),
                                "cache_folder_mib": round(_folder_bytes(folder) / mib, 1),
                                "artifact_folder_mib": round(_folder_bytes(Path(path)) / mib, 1)}
    out["total_seconds"] = round(sum(v["seconds"] for v in out.values()), 1)
    return out


def run(n: int = 2000, seed: int = 11, reps: int = 3, data: Path | None = Path("../shared/data"),
        registry: str | None = None, threads: int | None = None,
        stability_paths: Sequence[str] = ("ort_int8", "torch_fp32"), calibration_sources: bool = True,
        avx2_estimate: bool = True, paths: Sequence[str] | None = None) -> dict:
    import onnxruntime as ort

    from finpulse.models.engine.inference import cpu_features, cpu_has_native_bf16
    from finpulse.pipeline.enrich.handler import company_spans

    if threads:
        torch.set_num_threads(threads)
    threads = threads or torch.get_num_threads()
    texts = _texts(n, seed)
    out: dict[str, Any] = {
        "n_posts": n, "seed": seed, "threads": threads, "torch": torch.__version__, "onnxruntime": ort.__version__,
        "cpu": {"features": cpu_features(), "ort_u8s8_kernel": u8s8_kernel(), "cores": os.cpu_count()},
        "load_1min_before": round(os.getloadavg()[0], 2), "recipe": asdict(int8.Recipe()),
    }
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        scratch = Path(tmp)
        cache = scratch / "cache"
        out["build"] = build_cost(registry, cache)
        paths = [p for p in (paths or PATHS) if p != "torch_bf16" or cpu_has_native_bf16()]
        enrichers = {p: engine(p, registry, cache, threads, scratch, company_spans)
                     for p in paths if reps > 0 or p in stability_paths}
        if reps > 0:
            out |= throughput(enrichers, texts, reps)
            pps = out["posts_per_s"]
            if "torch_fp32" in pps:
                base = pps["torch_fp32"]
                out["over_torch_fp32"] = {p: round(v / base, 2) for p, v in pps.items() if p != "torch_fp32"}
                core = out["core_ms_per_post"]  # robust to other jobs on the machine: CPU time, not wall time
                out["torch_fp32_core_ms_over"] = {p: round(core["torch_fp32"] / v, 2) for p, v in core.items()
                                                  if p != "torch_fp32"}
        out["stability"] = {p: stability(enrichers[p], texts) for p in stability_paths if p in enrichers}
        del enrichers
        if avx2_estimate:
            share = int8_gemm_share(cache, registry, threads, texts[:1000])
            ratio = fbgemm_avx2_ratio(threads)
            slower = 1 - share + share / ratio["avx2_over_native"]  # encoder only: the host side is left out
            out["avx2_estimate"] = {
                "int8_gemm_share_of_encoder_time": share, "fbgemm_int8_gemm": ratio,
                "int8_encoder_time_factor_on_avx2": round(slower, 2),
                "note": "estimate: int8 GEMMs at fbgemm's AVX2/native speed ratio, everything else as here; torch "
                        "fp32 runs MKL's AVX2 SGEMM on AMD CPUs either way (MKL_ENABLE_INSTRUCTIONS=AVX2 changed "
                        "nothing here), so only the int8 side is scaled",
            }
        if data is not None and (data / "tfns_sentiment_train.csv").is_file():
            print("bench_int8: held-out quality", file=sys.stderr)
            out["quality"] = quality(data, cache, registry, threads, scratch, calibration_sources)
    out["load_1min_after"] = round(os.getloadavg()[0], 2)
    return out
