"""A real Prometheus (Debian's `prometheus` package, `make monitoring`) for tests: 127.0.0.1, a
temporary TSDB, one scrape a second, finpulse's alert rules loaded; queried over its HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parents[2] / "infra" / "prometheus" / "alerts.yml"


def binary(name: str) -> str:
    """Path of `prometheus` / `promtool`; a clear failure (not a skip) when the package is missing."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} not found: install Debian's prometheus package (`make monitoring`, "
                             "or apt-get install prometheus)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """`with Prometheus(tmp, {"finpulse-stream": ["127.0.0.1:P", ...]}) as prom: prom.query(...)`."""

    def __init__(self, workdir: Path, jobs: dict[str, list[str]]) -> None:
        self.dir = workdir
        self.port = free_port()
        self.jobs = jobs

    def __enter__(self) -> Prometheus:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in self.jobs.items()],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = self.dir / "prometheus.log"
        self.proc = subprocess.Popen(
            [binary("prometheus"), f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        self.__exit__()
        raise AssertionError(f"prometheus did not start; log:\n{self.log.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def api(self, path: str, **params: str) -> dict | list:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[tuple, float]:
        """An instant query: {label values sorted by name: value}."""
        data = self.api("query", query=expr)
        return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in data["result"]}

    def scalar(self, expr: str) -> float | None:
        """The one value of an aggregated query (None while it has no sample)."""
        got = self.query(expr)
        return next(iter(got.values())) if got else None
