"""Processes and feeds the end-to-end tests share: `finpulse stream` as a child process, messages
sent to the real broker, waiting on a condition with a useful message. Fixtures are in tests/conftest.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from finpulse.infra.broker import create_topics
from finpulse.pipeline.devtools.produce import publish
from finpulse.pipeline.lake.query import run_query

FINPULSE = [sys.executable, "-m", "finpulse.pipeline.cli"]


def send(bootstrap: str, topic: str, messages: list[bytes], partitions: int = 3) -> None:
    """Publish messages round-robin over the topic's partitions (created if missing)."""
    create_topics(bootstrap, {topic: partitions})
    publish({"bootstrap_servers": [bootstrap]}, topic, messages, partition_of=lambda i: i % partitions)


def posts(n: int, prefix: str, seed: int = 1) -> list[bytes]:
    from finpulse.pipeline.devtools.generator import generate_posts

    out = []
    for i, p in enumerate(generate_posts(n, seed=seed)):
        p["id"] = f"{prefix}-{i}"
        out.append(json.dumps(p).encode())
    return out


class StreamProcess:
    def __init__(self, bootstrap: str, topics: list[str], lake: Path, *extra: str, log: Path) -> None:
        cmd = FINPULSE + ["stream", "--bootstrap", bootstrap, "--topics", ",".join(topics), "--lake", str(lake), "-v", *extra]
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"stream did not finish in {timeout}s; log:\n{self.output()[-3000:]}") from None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def lake_rows(lake: Path, view: str = "enriched") -> int:
    return run_query(lake, f"select count(*) n from {view}").to_pylist()[0]["n"]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5, detail=None) -> None:
    """Poll `predicate` until it holds; on timeout fail with `detail()` (e.g. a process's log tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f"\n{detail()}" if detail else ""))

