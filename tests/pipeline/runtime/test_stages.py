"""The host side (issue #18): the stage accounting behind `finpulse bench`'s breakdown, and
`--workers`, which scales the host side over processes."""

from __future__ import annotations

import threading
import time

import pytest

from finpulse.pipeline.runtime import stages


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.fixture(autouse=True)
def accounting_off_afterwards():
    yield
    stages.enable(False)


def test_off_by_default_nothing_is_counted():
    stages.enable(False)
    with stages.stage("parse"):
        burn(0.01)
    assert stages.totals() == {}


def test_nested_stages_count_their_own_time_only_and_other_threads_add_theirs():
    stages.enable()
    with stages.stage("rows"):
        burn(0.03)
        with stages.stage("linking"):
            burn(0.05)
    t = threading.Thread(target=lambda: _in_stage("tokenise", 0.04))
    t.start()
    t.join()
    got = stages.totals()
    assert set(got) == {"rows", "linking", "tokenise"}
    assert 45 <= got["linking"][0] <= 70  # ms of thread CPU time, the inner stage's own
    assert 25 <= got["rows"][0] <= 45  # the outer stage without the inner one
    assert 35 <= got["tokenise"][0] <= 60 and got["tokenise"][1] == 1
    stages.enable()  # enabling again starts a new table
    assert stages.totals() == {}


def _in_stage(name: str, seconds: float) -> None:
    with stages.stage(name):
        burn(seconds)


def test_sleeping_is_not_core_time():
    stages.enable()
    with stages.stage("commit"):
        time.sleep(0.1)
    assert stages.totals()["commit"][0] < 20


@pytest.mark.slow
def test_bench_breakdown_covers_every_host_stage_of_a_real_backfill(tmp_path):
    """A real backfill of 60 generated posts: every host stage of the path shows up with time in it,
    the model's forward pass is reported apart, and each post was counted once (rows in the lake)."""
    from finpulse.pipeline.devtools.bench import HOST_STAGES, _posts, host_breakdown
    from finpulse.pipeline.lake.query import run_query

    out = host_breakdown(_posts(60, seed=5), "cpu", tmp_path)
    assert set(out["host_stages"]) == set(HOST_STAGES)
    assert all(v > 0 for k, v in out["host_stages"].items() if k != "to_device"), out  # a CPU copy is a no-op
    assert out["model_core_ms_per_post"] > 0 and out["host_core_ms_per_post"] > 0
    assert abs(out["host_core_ms_per_post"] - sum(out["host_stages"].values())) < 1e-3
    assert run_query(tmp_path / "lake", "select count(*) n from enriched").to_pylist()[0]["n"] == 60
    assert not stages.enabled()


def test_the_tokenizer_floor_times_the_windows_the_engine_tokenises():
    """`finpulse bench`'s tokenizer_core_ms_per_post times the bare Rust tokenizer: it must cut the
    same windows (ids, overlap included) as the engine, or the floor would time other work."""
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.pipeline.devtools.bench import _posts, bare_tokenizer
    from finpulse.pipeline.runtime.settings import InferenceSettings

    texts = [p["text"] for p in _posts(20, seed=6)] + ["Apple beats estimates. " * 90]  # the last: 3+ windows
    engine = Enricher(load_registry(), InferenceSettings(precision="fp32"))
    shared = engine.groups[0]
    tokens = engine._windows(shared, texts)
    bare = [ids for e in bare_tokenizer().encode_batch(texts) for ids in [e.ids, *(o.ids for o in e.overflowing)]]
    assert [list(w.input_ids) for w in tokens.windows] == bare
    assert len(bare) > len(texts) + 2


def test_the_engine_cuts_the_windows_the_hugging_face_tokenizer_cuts(real_data):
    """The engine reads its windows straight from the Rust encodings (`windows_tokenizer`); the
    Hugging Face call it replaced is the reference: the same windows in the same order, with the
    same ids, character offsets, word ids and owning text, on real headlines, odd text and a post
    long enough to overflow; and the target pass's inputs truncated alike."""
    import numpy as np

    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.models.engine.targets import mark_target
    from finpulse.pipeline.devtools.bench import _posts
    from finpulse.pipeline.runtime.settings import InferenceSettings

    texts = ([h["text"] for h in real_data.rows("headlines_real.jsonl")[:150]] + [p["text"] for p in _posts(30, seed=6)]
             + ["", " ", "é€ café ünï 日本語 𠀀 $TSLA", "Apple beats estimates. " * 90, "x" * 3000])
    engine = Enricher(load_registry(), InferenceSettings(precision="fp32"))
    for group in engine.groups:
        clipped = [t[: engine.settings.max_chars] for t in texts]
        ref = group.loaded.tokenizer(clipped, truncation=True, max_length=group.max_length,
                                     stride=engine.settings.stride, return_overflowing_tokens=True,
                                     return_offsets_mapping=True)
        got = engine._windows(group, texts)
        n = len(ref["input_ids"])
        assert [list(w.input_ids) for w in got.windows] == ref["input_ids"]
        assert got.window_text.tolist() == list(ref["overflow_to_sample_mapping"])
        spans = [pair for window in ref["offset_mapping"] for pair in window]
        assert list(zip(got.starts[:-1].tolist(), got.ends[:-1].tolist(), strict=True)) == [tuple(p) for p in spans]
        words = [-1 if w is None else w for i in range(n) for w in ref.word_ids(i)]
        assert got.words[:-1].tolist() == words and np.all(got.length == [len(x) for x in ref["input_ids"]])
        assert n > len(texts) + 2  # windows overflowed
    target = engine.target
    assert target is not None
    marked = [mark_target(t, 0, min(5, len(t))) for t in texts if t.strip()]
    ref_ids = target.loaded.tokenizer(marked, truncation=True, max_length=target.max_length)["input_ids"]
    assert [e.ids for e in target.windows_tokenizer.encode_batch(marked)] == ref_ids


def test_story_scaling_times_the_posts_before_each_mark():
    """`finpulse bench`'s stories_core_ms_per_post_by_live_entries: one figure per mark, keyed by the
    index's live entries then (no eviction within a few hours of generated posts)."""
    from finpulse.pipeline.devtools.bench import _posts, story_scaling

    got = story_scaling(_posts(1024, seed=6), marks=(512, 1024))
    assert list(got) == ["512", "1024"] and all(v > 0 for v in got.values())


def test_workers_option_turns_into_the_local_runners_multi_process_arguments(monkeypatch):
    """`--workers N` is Beam's multi_processing mode with N processes, each given cores / N PyTorch
    threads unless OMP_NUM_THREADS is set, and OpenMP threads that sleep when idle instead of
    spinning (unless OMP_WAIT_POLICY is set); explicit Beam arguments after `--` win."""
    import os

    from finpulse.pipeline.cli.options import worker_args

    # a copy of the environment: worker_args writes to it, and nothing may leak into later tests'
    # subprocesses (monkeypatch.delenv of an absent variable records nothing to undo)
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items()
                                        if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")})
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert worker_args(1, ["--x=1"]) == ["--x=1"]
    assert "OMP_NUM_THREADS" not in os.environ and "OMP_WAIT_POLICY" not in os.environ
    assert worker_args(4, ["--x=1"]) == ["--direct_num_workers=4", "--direct_running_mode=multi_processing", "--x=1"]
    assert os.environ["OMP_NUM_THREADS"] == "2" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    os.environ["OMP_WAIT_POLICY"] = "ACTIVE"  # the user's choice stands
    worker_args(2, [])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert worker_args(4, ["--direct_num_workers=3"]) == ["--direct_num_workers=3"]


def test_a_loaded_worker_hides_its_long_lived_heap_from_the_collector():
    """After load_model the models, tokenizers and libraries are frozen out of the garbage collector
    (handler.settle_heap), so a full collection walks only what the stream creates: unfrozen, each one
    cost about 0.3 s of CPU, once per ~1,000 posts here. In a child process: gc.freeze is process-wide."""
    import json
    import subprocess
    import sys

    code = (
        "import gc, json\n"
        "from finpulse.models.engine.inference import InferenceSettings\n"
        "from finpulse.pipeline.enrich.handler import FinpulseModelHandler\n"
        "model = FinpulseModelHandler(settings=InferenceSettings(precision='fp32')).load_model()\n"
        "label = model.predict(['Apple shares jump 5% after record iPhone sales'])[0].sentiment\n"
        "print(json.dumps({'walked': len(gc.get_objects()), 'frozen': gc.get_freeze_count(), 'label': label}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["label"] == "positive"
    assert got["frozen"] > 100_000  # the loaded heap (about 500,000 objects here)
    assert got["walked"] < got["frozen"] / 10, got
