"""Streams across processes: `finpulse stream --join-group` processes share a topic's partitions by
Kafka's own consumer-group assignment (the broker's coordinator), all committing to one lake.

One run on the embedded broker: three processes on six partitions under a steady feed, one
SIGKILLed and one added mid-feed, one paused (SIGSTOP) until its partitions have moved and then
woken (SIGCONT) as a zombie. Every record lands once; in the lake's log every partition's owner
token only grows (a commit by a process that lost the partition would carry its older token);
a real Prometheus scrapes every process."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from support.processes import StreamProcess, posts, wait_until
from support.prometheus_server import Prometheus, free_port

from finpulse.infra.broker import create_topics
from finpulse.pipeline.devtools.produce import publish
from finpulse.pipeline.lake.query import run_query

pytestmark = pytest.mark.slow

TOPIC, PARTITIONS, RECORDS = "grp-news", 6, 240
ALL = {f"kafka.{TOPIC}.{p}" for p in range(PARTITIONS)}


def assignment(proc: StreamProcess) -> set[str] | None:
    """The partitions the process last said it reads (None before its first assignment)."""
    found = re.findall(r"this process now reads \d+ partitions: ([^(]*) \(claimed", proc.output())
    return None if not found else {s.strip() for s in found[-1].split(",") if s.strip() and s.strip() != "none"}


def owner_tokens_in_log_order(lake: Path) -> dict[str, list[int]]:
    """Per partition, the owner token carried by each commit of the enriched table, in version order."""
    out: dict[str, list[int]] = {}
    for entry in sorted((lake / "enriched" / "_delta_log").glob("*.json")):
        for line in entry.read_text().splitlines():
            txn = json.loads(line).get("txn")
            if txn and txn["appId"].startswith("owner."):
                out.setdefault(txn["appId"][len("owner."):], []).append(txn["version"])
    return out


def test_stream_processes_share_partitions_by_consumer_group_through_kill_join_and_a_zombie(broker, tmp_path):
    create_topics(broker.bootstrap, {TOPIC: PARTITIONS})
    lake = tmp_path / "lake"
    ports = [free_port() for _ in range(4)]
    procs: list[StreamProcess] = []

    def start(i: int) -> StreamProcess:
        proc = StreamProcess(broker.bootstrap, [TOPIC], lake, "--join-group", "--group", "grp", "--metrics-port",
                             str(ports[i]), "--flush-seconds", "0.5", log=tmp_path / f"s{i}.log")
        procs.append(proc)
        return proc

    feed = posts(RECORDS, "g", seed=21)
    producer = threading.Thread(target=publish, args=({"bootstrap_servers": [broker.bootstrap]}, TOPIC, feed),
                                kwargs={"rate": 20.0, "partition_of": lambda i: i % PARTITIONS})
    try:
        with Prometheus(tmp_path / "prom", {"finpulse-stream": [f"127.0.0.1:{p}" for p in ports]}) as prom:
            s0, s1, s2 = start(0), start(1), start(2)
            producer.start()

            def shared_by(group: list[StreamProcess]) -> bool:
                for p in procs:
                    assert p.alive() or p is s0, p.output()[-3000:]
                parts = [assignment(p) for p in group]
                return all(parts) and set().union(*parts) == ALL and sum(len(x) for x in parts) == PARTITIONS

            def logs() -> str:
                return "\n".join(f"--- s{i}\n{p.output()[-1500:]}" for i, p in enumerate(procs))

            wait_until(lambda: shared_by([s0, s1, s2]) and "bundle committed" in s2.output(), 120,
                       "three processes sharing six partitions", detail=logs)

            s0.kill()  # one dies mid-feed ...
            s3 = start(3)  # ... and one joins
            began = time.monotonic()
            wait_until(lambda: shared_by([s1, s2, s3]), 90, "the partitions rebalanced over s1, s2, s3", detail=logs)
            rebalanced_s = time.monotonic() - began

            s1.proc.send_signal(signal.SIGSTOP)  # paused past its session: its partitions move on
            lost = assignment(s1)
            wait_until(lambda: shared_by([s2, s3]), 90, "s2 and s3 taking the paused process's partitions",
                       detail=logs)
            time.sleep(2)  # the new owners commit meanwhile
            s1.proc.send_signal(signal.SIGCONT)  # the zombie wakes with its old assignment and bundle
            producer.join(120)

            def all_in() -> bool:
                return run_query(lake, "select count(*) n from enriched").to_pylist()[0]["n"] >= RECORDS

            wait_until(all_in, 300, f"{RECORDS} rows in the lake", detail=logs)
            wait_until(lambda: prom.scalar('sum(finpulse_consumer_lag{job="finpulse-stream"})') == 0, 60,
                       "Prometheus to see lag 0 across the processes", detail=logs)

            def up() -> list[float]:
                now = {dict(k)["instance"]: v for k, v in prom.query('up{job="finpulse-stream"}').items()}
                return [now.get(f"127.0.0.1:{p}", -1.0) for p in ports]

            # the killed process is down; the others answer (a 1 s scrape can time out on a busy machine,
            # so wait for a successful one rather than trusting the latest)
            wait_until(lambda: up() == [0, 1, 1, 1], 30, "Prometheus to scrape the live processes",
                       detail=lambda: str(up()))
            scraped = prom.query('max_over_time(finpulse_rows_total{table="enriched"}[5m])')
            assert {dict(k)["instance"] for k, v in scraped.items() if v > 0} >= {f"127.0.0.1:{p}" for p in ports[2:]}
        time.sleep(1)
        stats = run_query(lake, "select count(*) n, count(distinct id) d, count(distinct kafka_partition) p "
                                "from enriched").to_pylist()[0]
        assert stats == {"n": RECORDS, "d": RECORDS, "p": PARTITIONS}  # every record once
        tokens = owner_tokens_in_log_order(lake)
        assert set(tokens) == ALL
        for source, seq in tokens.items():
            assert seq == sorted(seq), f"{source}: a commit carried an older owner's token: {seq}"
        assert lost, "the paused process held no partition: the zombie case tested nothing"
        print(f"rebalanced after a kill and a join in {rebalanced_s:.1f}s; zombie's partitions: {sorted(lost)}")
    finally:
        for p in procs:
            if p.alive():
                p.proc.send_signal(signal.SIGCONT)
                p.kill()
