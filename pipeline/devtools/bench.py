"""`finpulse bench`: throughput and latency figures, measured in one run on the same texts.

Posts/s always means all three tasks done for each post. `precision` is the engine's precision in
this run (`--precision`, default auto; models/engine/inference.py, pick_precision): every figure but
`ours_fp32_posts_per_s` and the baseline runs at it.

* `baseline_posts_per_s`: stock Beam (three RunInference steps with HuggingFacePipelineModelHandler,
  default batching) on the same fine-tuned weights; `ours_in_beam_posts_per_s`: our handler in the
  same kind of pipeline on the same texts; `speedup` is their ratio
* `ours_posts_per_s`: the Enricher alone (one shared encoder pass, three heads, length-aware batches)
* `ours_without_target_pass_posts_per_s`: the Enricher with the target-marked per-company pass off
  (models/engine/targets.py; the span head alone, as before that pass existed): `target_pass_cost` is the
  share of the engine's throughput the pass costs (on a CPU from the `*_core_ms_per_post` figures,
  this process's CPU time, which a second job on the machine does not move; on a GPU from posts/s),
  and `target_pass_texts` the share of posts that got the pass
* `separate_models_posts_per_s`: the same weights loaded as three separate models, one
  encoder pass per task: what the shared encoder saves
* `e2e_posts_per_s`, `latency_p50_ms`, `latency_p99_ms`: embedded broker -> `finpulse stream`
  (a separate process) -> rows visible in DuckDB; latency is from the producer's send to the
  commit (rename) of the Parquet file that holds the row
* `host_stages`, `host_core_ms_per_post`, `model_core_ms_per_post`: core milliseconds per post in
  each stage of the real pipeline (a backfill of the same posts through the real models and the
  real lake, in this process, with `pipeline/runtime/stages.py` accounting on), comparable across machines
* `tokenizer_core_ms_per_post`: the Rust tokenizer alone on the same texts, one thread: the part of
  `tokenise` (and of the host total) below which none of our code can go
* `e2e_core_ms_per_post`, `latency_core_ms_per_post`: the stream's CPU time (its process and SDK
  workers, after its first commit) per post in the burst and at the steady rate: what a run beside
  another job still compares, where posts/s do not
* `e2e_2_workers_posts_per_s`: the same burst through `finpulse stream --workers 2`
* `quality_delta`: held-out scores at `precision` minus fp32 (points)
* `cpu_features`: which of AMX, AVX512-BF16, AVX512-VNNI or AVX-VNNI (int8), AVX-512, AVX2 the CPU has (the fast
  paths depend on them)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import psutil


def _posts(n: int, seed: int) -> list[dict]:
    from finpulse.pipeline.devtools.generator import generate_posts

    posts = list(generate_posts(n, seed=seed))
    for i, p in enumerate(posts):
        p["id"] = f"bench-{seed}-{i}"
    return posts


def _separate_registry(tmp: Path) -> Path:
    """A registry whose three tasks point at three copies of the default artifact (the per-company
    head stays with NER: it scores the ORG spans of the NER pass, so it cannot be separated)."""
    from finpulse.models.artifacts.registry import DEFAULT_REGISTRY, load_registry

    reg = json.loads(DEFAULT_REGISTRY.read_text())
    shipped = load_registry()
    src = shipped.sentiment.artifact_path
    for task in reg:
        if task == "entity_target":  # its own small model already, run after the shared pass
            reg[task]["artifact"] = str(shipped.entity_target.artifact_path)  # type: ignore[union-attr]
            continue
        dst = tmp / f"artifact-{'ner' if task == 'entity_sentiment' else task}"
        if not dst.exists():
            shutil.copytree(src, dst)
        reg[task]["artifact"] = str(dst)
    path = tmp / "registry.json"
    path.write_text(json.dumps(reg))
    return path


class Timed(NamedTuple):
    posts_per_s: float
    core_ms_per_post: float  # this process's CPU time: robust to other jobs on a shared machine
    preds: list
    precision: str  # what the engine ran at


def inference_throughput(texts: list[str], registry: str | None, device: str, precision: str = "auto",
                         target_pass: str | None = None) -> float:
    return timed_predict(texts, registry, device, precision, target_pass).posts_per_s


def pipeline_enricher(registry: str | None, device: str, precision: str = "auto",
                      target_pass: str | None = None) -> Any:
    """The Enricher as the pipeline runs it: cashtags and gazetteer names scored by the per-company head
    beside the ORG entities."""
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.pipeline.enrich.handler import company_spans
    from finpulse.pipeline.runtime.settings import InferenceSettings

    settings = InferenceSettings(device=device, precision=precision, target_pass=target_pass)
    return Enricher(load_registry(registry), settings, mention_finder=company_spans)


def timed_predict(texts: list[str], registry: str | None, device: str, precision: str = "auto",
                  target_pass: str | None = None) -> Timed:
    """The Enricher as the pipeline runs it, timed on its second pass over `texts`.

    The first pass is the warm-up: on a CPU, oneDNN compiles kernels for each new batch shape on
    first sight (process-wide), and the target-marked per-company pass sees few shapes in a short
    warm-up; a 64-text warm-up left that compiling in the timed run (AMX machine: the pass seemed to
    cost 27% of the engine, 9% once warm). A stream running for hours has met its shapes."""
    enricher = pipeline_enricher(registry, device, precision, target_pass)
    enricher.predict(texts)  # warm-up: every batch shape of the timed run
    t, cpu = time.perf_counter(), time.process_time()
    preds = enricher.predict(texts)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return Timed(len(texts) / wall, 1000 * cpu / len(texts), preds, enricher.precision)


def versus_texts(data_dir: Path | None, n: int) -> list[str]:
    """Real posts for `engine_turns`: the TFNS rows every shipped model held out (seed 13), at most `n`;
    generated posts where the data set is not at hand."""
    from finpulse.models.data import holdout_split, read_classification_csv
    from finpulse.models.tasks import get_task

    path = data_dir / "tfns_sentiment_train.csv" if data_dir else None
    if path is None or not path.is_file():
        return [p["text"] for p in _posts(n, 3)]
    rows = read_classification_csv(path, get_task("sentiment"))
    return [rows[i].text for i in holdout_split(rows)[1]][:n]


def engine_turns(texts: list[str], registry: str, versus: str, device: str, precision: str = "auto",
                 reps: int = 4) -> dict[str, Any]:
    """Two registries' engines (the pipeline's, with cashtag and gazetteer mentions) taking turns on the
    same texts, `reps` timed passes each after one warm-up pass each: the way to say whether a model
    change costs speed. Alternating spreads a machine's drift (another job, clock changes) over both;
    the medians and their ratio are the figures. Core-ms per post come from the process's CPU time."""
    import statistics

    from finpulse.models.engine.inference import cpu_features

    engines = {}
    for name, reg in (("ours", registry), ("versus", versus)):
        engines[name] = pipeline_enricher(reg, device, precision)
        engines[name].predict(texts)  # warm-up: every batch shape of the timed passes
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "versus": []}
    for _ in range(reps):
        for name, engine in engines.items():
            t, cpu = time.perf_counter(), time.process_time()
            engine.predict(texts)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            runs[name].append((1000 * cpu / len(texts), len(texts) / wall))
    out: dict[str, Any] = {"texts": len(texts), "reps": reps, "cpu_features": cpu_features(),
                           "precision": engines["ours"].precision}
    for name, reg in (("ours", registry), ("versus", versus)):
        out[name] = {"registry": reg, "model_version": engines[name].registry.model_version,
                     "core_ms_per_post": [round(c, 2) for c, _ in runs[name]],
                     "posts_per_s": [round(r, 1) for _, r in runs[name]],
                     "median_core_ms_per_post": round(statistics.median(c for c, _ in runs[name]), 2)}
    # throughput ratio on CPU time: ours' share of the CPU the other needs for the same posts
    ours, other = out["ours"]["median_core_ms_per_post"], out["versus"]["median_core_ms_per_post"]
    out["throughput_ratio"] = round(other / ours, 3)
    return out


def end_to_end(posts: list[dict], device: str, workdir: Path, rate: float | None = None, workers: int = 1,
               precision: str = "auto") -> dict:
    """Produce `posts` (as fast as possible, or paced at `rate` posts/s) and stream them to the lake
    (`workers`: the stream's `--workers`, SDK worker processes)."""
    from finpulse.infra.broker import EmbeddedBroker, create_topics
    from finpulse.pipeline.devtools.produce import publish

    workdir.mkdir(parents=True, exist_ok=True)
    lake = workdir / "lake"
    with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
        create_topics(broker.bootstrap, {"bench-news": 3, "bench-social": 3})
        cmd = [sys.executable, "-m", "finpulse.pipeline.cli", "stream", "--bootstrap", broker.bootstrap,
               "--topics", "bench-news,bench-social", "--lake", str(lake), "--device", device,
               "--workers", str(workers), "--precision", precision]
        # --max-records counts per worker process, so several workers stop on idleness instead
        # (the throughput is taken from the commits, so the idle wait does not count)
        cmd += ["--max-records", str(len(posts) + 1)] if workers == 1 else ["--idle-exit", "30"]
        stream = subprocess.Popen(cmd, stdout=open(workdir / "stream.log", "wb"), stderr=subprocess.STDOUT)
        peak_rss = 0.0
        sent_at: dict[str, float] = {}
        cfg = {"bootstrap_servers": [broker.bootstrap]}
        # The clock starts once the stream has committed one warm-up post: start-up (imports, model
        # load, first poll) is `finpulse bench --service`'s first_commit_s, not part of these figures.
        # (A fixed 8 s sleep was shorter than start-up here and put start-up into the latency p99.)
        warm = dict(posts[0], id="bench-warm-up")
        publish(cfg, "bench-news", iter([json.dumps(warm).encode()]))
        deadline = time.monotonic() + 600
        while not any((lake / "enriched" / "_delta_log").glob("*.json")):
            if stream.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stream did not commit its warm-up post; see {workdir / 'stream.log'}")
            time.sleep(0.1)

        def messages(kind: str):
            for p in posts:
                if (p["kind"] == "news") == (kind == "news"):
                    sent_at[p["id"]] = time.time()
                    yield json.dumps(p).encode()

        proc = psutil.Process(stream.pid)
        cpu_at_warm = _tree_usage(proc)[1]  # start-up is not part of the per-post CPU either
        started = time.time()
        if rate:
            import threading

            side = threading.Thread(target=publish, args=(cfg, "bench-social", messages("social"), rate / 2))
            side.start()
            publish(cfg, "bench-news", messages("news"), rate / 2)
            side.join()
        else:
            publish(cfg, "bench-news", messages("news"))
            publish(cfg, "bench-social", messages("social"))
        cpu_s = cpu_at_warm
        while stream.poll() is None:
            try:
                rss_mb, cpu_now = _tree_usage(proc)
            except psutil.NoSuchProcess:  # the stream itself has just exited
                break
            peak_rss, cpu_s = max(peak_rss, rss_mb), max(cpu_s, cpu_now)
            time.sleep(0.2)
        stream.wait()
        if stream.returncode != 0:
            raise RuntimeError(f"stream failed; see {workdir / 'stream.log'}")
    rows = [r for r in _committed_ids(lake) if r[0] in sent_at]  # the warm-up post left out
    visible = {f: os.stat(f).st_mtime for f in {r[1] for r in rows}}
    latencies = sorted((visible[f] - sent_at[i]) * 1000 for i, f in rows)
    finished = max(visible.values())

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)

    return {"e2e_rows": len(rows), "e2e_posts_per_s": round(len(rows) / (finished - started), 1),
            "latency_p50_ms": pct(0.50), "latency_p99_ms": pct(0.99), "peak_rss_mb": round(peak_rss),
            "core_ms_per_post": round(1000 * (cpu_s - cpu_at_warm) / len(rows), 2)}


def _tree_usage(proc: psutil.Process) -> tuple[float, float]:
    """(resident MB, CPU seconds user + system) of a process and its live children: the stream and
    its SDK workers, in one walk. Unlike posts/s, a second job on the machine hardly moves the CPU
    time. A child that exits during the walk is skipped; the process itself must be alive."""
    rss = cpu = 0.0
    for i, p in enumerate([proc, *proc.children(recursive=True)]):
        try:
            times, mem = p.cpu_times(), p.memory_info()
        except psutil.NoSuchProcess:
            if i == 0:
                raise
            continue
        rss, cpu = rss + mem.rss / 2**20, cpu + times.user + times.system
    return rss, cpu


def _committed_ids(lake: Path) -> list[tuple[str, str]]:
    """(id, file) of every committed enriched row, from the table's newest version (the lake seam);
    the file's mtime is when the row became visible, give or take the commit latency (the log
    entry follows the data file within one commit, a few tens of milliseconds; docs/SCALING.md)."""
    import pyarrow.parquet as pq

    from finpulse.pipeline.lake.tables import snapshot

    return [(i, f) for f in sorted(snapshot(lake, "enriched").files)
            for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]


@contextlib.contextmanager
def one_tokenizer_thread() -> Iterator[None]:
    """Tokenise on the calling thread inside the block (TOKENIZERS_PARALLELISM=false, restored after).

    Why: the fast tokenizer spreads a batch over its own Rust threads when allowed to, and a stage's
    thread clock does not see them (measured: 0.022 core-ms/post counted, 0.097 done)."""
    parallel = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if parallel is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = parallel


HOST_STAGES = ("parse", "tokenise", "pad", "to_device", "decode_heads", "entities", "mentions", "linking", "rows",
               "stories", "arrow", "commit")


def host_breakdown(posts: list[dict], device: str, workdir: Path, precision: str = "auto") -> dict:
    """Core-ms per post in each stage of a real backfill of `posts` (models, stories, Delta lake).

    Run in this process so one stage table sees every stage. `forward` (the model, counted over
    the whole process because PyTorch runs it on its own threads) is reported apart from the host
    stages; `other_core_ms_per_post` is the process's CPU time outside every stage once the first
    post was parsed: Beam's own work between the stages and reading the archive.
    `startup_core_s` is what came before (model loading, pipeline construction). The tokeniser
    of the next chunk runs beside the forward pass, so its time can be counted in both: the
    stages may add up to slightly more than the process used. It runs on the stage's own thread
    (`one_tokenizer_thread`), so `tokenise` counts all of its work.
    """
    from finpulse.pipeline.enrich.companies import load_gazetteer, normalize
    from finpulse.pipeline.jobs.backfill import run_backfill
    from finpulse.pipeline.runtime import stages

    normalize.cache_clear()  # the engine runs above saw these texts: start linking cold, as a stream would
    load_gazetteer().scans.clear()

    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / "posts.jsonl"
    archive.write_text("".join(json.dumps(p) + "\n" for p in posts))
    stages.enable()
    began = time.process_time() * 1000
    try:
        with one_tokenizer_thread():
            run_backfill(str(archive), str(workdir / "lake"), device=device, precision=precision, progress=False)
        ended = time.process_time() * 1000
        table, first = stages.totals(), stages.first_entered_ms() or began
    finally:
        stages.enable(False)
    n = len(posts)
    per_post = {name: round(table[name][0] / n, 4) for name in HOST_STAGES if name in table}
    model = table.get("forward", (0.0, 0))[0] / n
    host = sum(per_post.values())
    return {"host_stages": per_post, "host_core_ms_per_post": round(host, 4),
            "model_core_ms_per_post": round(model, 3),
            "other_core_ms_per_post": round(max(0.0, (ended - first) / n - host - model), 3),
            "startup_core_s": round((first - began) / 1000, 2), "host_stage_posts": n}


def story_scaling(posts: list[dict], marks: tuple[int, ...] = (4096, 16384)) -> dict[str, float]:
    """Core-ms per post of the story stage (`StoryIndex.assign_many`, 256 a call) over the 4,096
    posts before each mark of posts seen (fewer when marks are closer), keyed by the live entries
    then, on generated posts: templated text, so each shares an LSH band with hundreds of live
    entries, the worst case for the stage's candidate checks. The `stories` host stage above sees
    a near-empty index; a stream holds three days of posts."""
    from finpulse.pipeline.enrich.stories import StoryIndex

    posts = posts[: max(marks)]
    # timing starts: 4,096 posts before each mark, or the previous mark (marks are multiples of 256)
    starts = {max(before, mark - 4096) for before, mark in zip((0, *marks), marks, strict=False)}
    index, out = StoryIndex(), {}
    timed_from, began = 0, time.process_time()
    for lo in range(0, len(posts), 256):
        batch = posts[lo : lo + 256]
        if lo in starts:
            timed_from, began = lo, time.process_time()
        index.assign_many([p["id"] for p in batch], [p["text"] for p in batch],
                          [datetime.fromisoformat(p["published_at"]) for p in batch])
        if lo + len(batch) in marks:
            timed = lo + len(batch) - timed_from
            out[str(len(index))] = round(1000 * (time.process_time() - began) / timed, 4)
    return out


def bare_tokenizer(registry: str | None = None) -> Any:
    """The shared encoder's Rust tokenizer (`tokenizers.Tokenizer`), set to cut windows as the engine
    does (`Enricher._windows`): what `tokenizer_floor` times."""
    from transformers import AutoTokenizer

    from finpulse.models.artifacts.artifact import read_config, resolve_base
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import windows_tokenizer
    from finpulse.pipeline.runtime.settings import InferenceSettings

    reg = load_registry(registry)
    wrapper = AutoTokenizer.from_pretrained(resolve_base(read_config(reg.sentiment.artifact_path).base), use_fast=True)
    return windows_tokenizer(wrapper, min(t.max_length for t in reg.tasks.values()), InferenceSettings().stride)


def tokenizer_floor(texts: list[str], registry: str | None = None, repeats: int = 3) -> float:
    """Core-ms per post of the Rust tokenizer alone on `texts` (the shared encoder's, with the engine's
    truncation and windows, on one thread; best of `repeats`): the floor under `host_stages`'
    `tokenise` that none of our code can go below, reported so that the host total can be read
    against it on any machine (issue #18's 0.05 core-ms target counts the tokenizer too)."""
    from finpulse.pipeline.runtime.settings import InferenceSettings

    tok = bare_tokenizer(registry)
    clipped = [t[: InferenceSettings().max_chars] for t in texts]
    best = float("inf")
    with one_tokenizer_thread():
        for _ in range(repeats):
            began = time.process_time()
            tok.encode_batch(clipped)
            best = min(best, time.process_time() - began)
    return round(1000 * best / len(texts), 4)


def quality_delta(data_dir: Path, device: str, precision: str) -> dict:
    """Held-out scores at `precision` ("bf16", "fp32" or "int8": what the engine ran) minus the fp32
    reference (points; negative = worse)."""
    from finpulse.models.artifacts.artifact import load_artifact
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.data import holdout_split, read_classification_csv, read_task_file
    from finpulse.models.engine import int8
    from finpulse.models.evaluation.evaluate import evaluate
    from finpulse.models.tasks import get_task

    loaded = load_artifact(load_registry().sentiment.artifact_path, device)
    tr = loaded.config.training
    fp32_encoder = loaded.model.encoder
    fast_encoder = int8.int8_encoder(loaded) if precision == "int8" else fp32_encoder
    out = {}
    for task, name, metric in (("sentiment", "tfns_sentiment_train.csv", "macro_f1"), ("topic", "tfn_topic_train.csv", "macro_f1"),
                               ("ner", "conll2003_dev.txt", "f1")):
        spec = get_task(task)
        if task == "ner":
            rows: list = read_task_file(data_dir / name, spec)
        else:  # the held-out split of a sequence task's training file, as training made it
            labelled = read_classification_csv(data_dir / name, spec)
            held = holdout_split(labelled, tr)[1]
            rows = [labelled[i] for i in held]
        loaded.model.encoder = fp32_encoder
        ref = evaluate(loaded.model, loaded.tokenizer, rows, spec, device)
        loaded.model.encoder = fast_encoder
        fast = evaluate(loaded.model, loaded.tokenizer, rows, spec, device, bf16=precision == "bf16")
        out[f"{task}_{metric}"] = round(100 * (fast[metric] - ref[metric]), 2)
        if "accuracy" in ref:
            out[f"{task}_accuracy"] = round(100 * (fast["accuracy"] - ref["accuracy"]), 2)
    return out


def run_bench(n: int, device: str, e2e: bool = True, seed: int = 3, baseline_n: int = 2000,
              quality_data: Path | None = None, precision: str = "auto") -> dict:
    import torch

    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import cpu_features
    from finpulse.pipeline.devtools.stock_beam import run_baseline, run_ours_in_beam
    from finpulse.pipeline.jobs.stream import resolve_device

    device = resolve_device(device)
    posts = _posts(n, seed)
    texts = [p["text"] for p in posts]
    result: dict = {"device": device, "n": n, "cpu_threads": torch.get_num_threads(), "cpu_features": cpu_features()}
    with tempfile.TemporaryDirectory(prefix="finpulse-bench-") as tmp:
        tmp_path = Path(tmp)
        # Baseline and ours through the same kind of Beam pipeline, on the same texts.
        same = texts[:baseline_n]
        result["baseline_n"] = len(same)
        result.update(run_baseline(same))
        result["ours_in_beam_posts_per_s"] = run_ours_in_beam(same, device, precision=precision)["ours_posts_per_s"]
        result["speedup"] = round(result["ours_in_beam_posts_per_s"] / result["baseline_posts_per_s"], 2)
        ours = timed_predict(texts, None, device, precision)
        result["precision"] = ours.precision
        result["ours_posts_per_s"] = round(ours.posts_per_s, 1)
        result["target_pass_texts"] = round(
            sum(any(m.scorer == "target" for m in p.mentions or []) for p in ours.preds) / len(texts), 3)
        result["ours_fp32_posts_per_s"] = round(inference_throughput(texts, None, device, "fp32"), 1)
        without = timed_predict(texts, None, device, precision, target_pass="off")
        result["ours_without_target_pass_posts_per_s"] = round(without.posts_per_s, 1)
        result["ours_core_ms_per_post"] = round(ours.core_ms_per_post, 2)
        result["ours_without_target_pass_core_ms_per_post"] = round(without.core_ms_per_post, 2)
        # on a CPU from CPU time (a second job on the machine cannot move it), on a GPU from wall time
        on_cpu = not device.startswith("cuda")
        result["target_pass_cost"] = round(1 - (without.core_ms_per_post / ours.core_ms_per_post if on_cpu
                                                else ours.posts_per_s / without.posts_per_s), 3)
        result["separate_models_posts_per_s"] = round(
            inference_throughput(texts, str(_separate_registry(tmp_path)), device, precision), 1)
        result["shared_encoder_speedup"] = round(result["ours_posts_per_s"] / result["separate_models_posts_per_s"], 2)
        result.update(host_breakdown(posts, device, tmp_path / "stages", precision))
        result["tokenizer_core_ms_per_post"] = tokenizer_floor(texts)
        result["stories_core_ms_per_post_by_live_entries"] = story_scaling(_posts(16384, seed + 2))
        if e2e:
            burst = end_to_end(posts, device, tmp_path / "burst", precision=precision)
            result["e2e_posts_per_s"] = burst["e2e_posts_per_s"]
            result["e2e_core_ms_per_post"] = burst["core_ms_per_post"]
            result["peak_rss_mb"] = burst["peak_rss_mb"]
            result["burst_latency_p50_ms"] = burst["latency_p50_ms"]
            # The same burst with two SDK worker processes (`--workers 2`), each with its own model.
            result["e2e_2_workers_posts_per_s"] = end_to_end(posts, device, tmp_path / "burst-2w", workers=2,
                                                             precision=precision)["e2e_posts_per_s"]
            # Latency under a steady load at half the measured capacity (what a live feed sees).
            rate = round(burst["e2e_posts_per_s"] / 2, 1)
            paced = end_to_end(_posts(min(n, 1000), seed + 1), device, tmp_path / "paced", rate=rate,
                               precision=precision)
            result["latency_rate_posts_per_s"] = rate
            result["latency_p50_ms"] = paced["latency_p50_ms"]
            result["latency_p99_ms"] = paced["latency_p99_ms"]
            result["latency_core_ms_per_post"] = paced["core_ms_per_post"]
            result["peak_rss_mb"] = max(result["peak_rss_mb"], paced["peak_rss_mb"])
    # story de-dup + company linking beside the models, same texts, same process (bench_stories.py)
    from finpulse.pipeline.devtools.bench_stories import cost

    result["linking_dedup"] = cost(texts[:1000], device, precision)
    result["quality_delta"] = (quality_delta(quality_data, device, result["precision"])
                               if quality_data and quality_data.is_dir() else None)
    result["mean_words_per_post"] = round(sum(len(t.split()) for t in texts) / len(texts), 1)
    result["model_version"] = load_registry().model_version
    return result
