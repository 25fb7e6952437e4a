"""Prometheus metrics, `/healthz` and `/readyz` for the stream, the backfill and the alerts follower.

Off by default: until `serve()` is called every hook below returns at its first line, so a
process without `--metrics-port` pays nothing. With it, one HTTP server thread (bound to
127.0.0.1 unless told otherwise) answers:

* `/metrics`: the Prometheus text format (consumer lag per partition, rows and dead letters by
  reason, model batch latency and size, commit latency, Kafka-timestamp-to-committed-row latency,
  records per bundle, alerts by severity, notifications by outcome, last-commit age);
* `/healthz`: 200 while the process serves requests (liveness: restart me if this stops);
* `/readyz`: 200 only if the broker answers a metadata request, the lake takes a write, and the
  last commit is younger than `stalled_after` seconds whenever there is lag to commit (an idle
  stream with nothing to read is ready); 503 with a JSON body naming the failed checks otherwise.

The numbers live in this process: on FnApiRunner the DoFns run in it. On a runner whose workers
are other processes (Dataflow, Flink, `--direct_running_mode=multi_processing`) the same counts
are reported through Beam's metrics (see jobs/transforms.py), which those runners export.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

log = logging.getLogger(__name__)

_enabled = False
_lock = threading.Lock()
_highwater: dict[tuple[str, int], int] = {}  # (topic, partition) -> log end offset seen by the reader
_committed: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset the lake needs
_last_commit: float | None = None  # wall-clock time of the last commit (or evaluation, for alerts)
_started = time.time()
_M: dict[str, Any] = {}

# Dead-letter reasons are a small closed set (bounded label cardinality), read off the error text.
REASONS = (
    ("over the", "oversized"),
    ("empty message", "empty"),
    ("not UTF-8", "not_utf8"),
    ("not valid JSON", "not_json"),
    ("expected a JSON object", "not_object"),
    ("published_at", "timestamp"),
    ("text", "text"),
    ("enrichment failed", "enrich_failed"),
    ("output validation", "output_invalid"),
    ("invalid record", "invalid_field"),
)
LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 600)


def dead_letter_reason(error: str) -> str:
    """The reason label of a dead letter: a fixed vocabulary, never the raw error (unbounded)."""
    return next((label for needle, label in REASONS if needle in error), "other")


def enabled() -> bool:
    return _enabled


def _build() -> None:
    """Create the metric objects once, on the default registry."""
    from prometheus_client import REGISTRY, Counter, Gauge, Histogram
    from prometheus_client.core import GaugeMetricFamily

    if _M:
        return
    _M["rows"] = Counter("finpulse_rows", "Rows committed to the lake", ["table"])
    _M["dead"] = Counter("finpulse_dead_letters", "Dead letters committed to the lake, by reason", ["reason"])
    _M["batch_s"] = Histogram(
        "finpulse_model_batch_seconds",
        "Model inference time per batch",
        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
    )
    _M["batch_n"] = Histogram(
        "finpulse_model_batch_size", "Texts per model batch", buckets=(1, 8, 16, 32, 64, 128, 256, 512, 1024)
    )
    _M["commit_s"] = Histogram(
        "finpulse_commit_seconds",
        "Lake commit time per source and bundle",
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    _M["e2e"] = Histogram(
        "finpulse_end_to_end_seconds", "Kafka record timestamp to committed row", buckets=LATENCY_BUCKETS
    )
    _M["bundle"] = Histogram(
        "finpulse_bundle_records",
        "Records committed per bundle (all sources)",
        buckets=(1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
    )
    _M["alerts"] = Counter("finpulse_alerts", "Alerts recorded, by severity", ["severity"])
    _M["notify"] = Counter("finpulse_notifications", "Notification attempts by route and outcome", ["route", "outcome"])
    _M["last"] = Gauge("finpulse_last_commit_timestamp_seconds", "Unix time of the last commit (alerts: evaluation)")

    class _Derived:
        """Lag and last-commit age, computed when scraped (from what the reader and writer saw)."""

        def collect(self) -> Iterable[GaugeMetricFamily]:
            lag = GaugeMetricFamily(
                "finpulse_consumer_lag", "Records in Kafka not yet committed to the lake", labels=["topic", "partition"]
            )
            for (topic, partition), value in sorted(partition_lag().items()):
                lag.add_metric([topic, str(partition)], value)
            yield lag
            yield GaugeMetricFamily(
                "finpulse_last_commit_age_seconds",
                "Seconds since the last commit (since start-up before the first)",
                value=last_commit_age(),
            )

        def describe(self) -> list:
            return []

    REGISTRY.register(_Derived())


# -- hooks: small calls from the pipeline, no-ops unless serving ------------------------------
def observe_highwater(topic: str, partition: int, highwater: int | None) -> None:
    if _enabled and highwater is not None:
        with _lock:
            _highwater[(topic, partition)] = highwater


def observe_position(topic: str, partition: int, next_offset: int) -> None:
    """Where the lake stands on a partition this process (re)starts reading: its lag counts from there."""
    if _enabled:
        with _lock:
            _committed[(topic, partition)] = next_offset


def forget_partition(topic: str, partition: int) -> None:
    """A partition another process reads now (--join-group rebalance): its lag is no longer ours to report."""
    with _lock:
        _highwater.pop((topic, partition), None)
        _committed.pop((topic, partition), None)


def observe_batch(size: int, seconds: float) -> None:
    if _enabled:
        _M["batch_s"].observe(seconds)
        _M["batch_n"].observe(size)


def observe_commit(source: str, end: int | None, seconds: float, rows: Mapping[str, int], dead_errors: Sequence[str],
                   event_ms: Sequence[int]) -> None:
    """One source's commit: its latency, rows by table (`rows`: table -> count) and dead letters by
    reason (`dead_errors`: their error texts), end-to-end latency (`event_ms`: the rows' Kafka times)."""
    global _last_commit
    if not _enabled:
        return
    now = time.time()
    _M["commit_s"].observe(seconds)
    for table, n in rows.items():
        if n:
            _M["rows"].labels(table).inc(n)
    for error in dead_errors:
        _M["dead"].labels(dead_letter_reason(error)).inc()
    for ms in event_ms:
        _M["e2e"].observe(max(0.0, now - ms / 1000))
    with _lock:
        _last_commit = now
        if end is not None and source.startswith("kafka."):  # end: the Kafka offset, log epoch stripped
            topic, _, partition = source[len("kafka.") :].rpartition(".")
            _committed[(topic, int(partition))] = end
    _M["last"].set(now)


def observe_bundle(records: int) -> None:
    if _enabled and records:
        _M["bundle"].observe(records)


def observe_alerts(severities: Iterable[str]) -> None:
    if _enabled:
        for s in severities:
            _M["alerts"].labels(s).inc()


def observe_notification(route: str, outcome: str) -> None:
    if _enabled:
        _M["notify"].labels(route, outcome).inc()


def heartbeat() -> None:
    """Progress without a lake commit (an alerts evaluation): feeds the last-commit age."""
    global _last_commit
    if _enabled:
        _last_commit = time.time()
        _M["last"].set(_last_commit)


def partition_lag() -> dict[tuple[str, int], int]:
    """Per partition: log end offset minus the lake's next offset (0 when caught up)."""
    with _lock:
        return {k: max(0, hw - _committed.get(k, 0)) for k, hw in _highwater.items()}


def last_commit_age() -> float:
    return time.time() - (_last_commit if _last_commit is not None else _started)


# -- readiness ----------------------------------------------------------------------------------
@dataclass
class Readiness:
    """The checks behind `/readyz`, each cached for `every` seconds so scrapes stay cheap."""

    lake: str | None = None
    kafka_config: dict[str, Any] | None = None
    stalled_after: float = 120.0
    needs_lag: bool = True  # stream: a stale commit only matters while there is lag
    every: float = 2.0
    _cache: dict[str, tuple[float, bool, str]] = field(default_factory=dict)
    _consumer: Any = None

    def _cached(self, name: str, check: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
        hit = self._cache.get(name)
        if hit and time.monotonic() - hit[0] < self.every:
            return hit[1], hit[2]
        ok, detail = check()
        self._cache[name] = (time.monotonic(), ok, detail)
        return ok, detail

    def _broker(self) -> tuple[bool, str]:
        from kafka import KafkaConsumer

        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(
                    **(self.kafka_config or {}), request_timeout_ms=3000, reconnect_backoff_max_ms=1000
                )
            self._consumer.topics()  # a fresh metadata request
            return True, "metadata answered"
        except Exception as exc:  # noqa: BLE001 - any failure means not reachable
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    self._consumer.close()
            self._consumer = None
            return False, f"{type(exc).__name__}: {exc}"[:200]

    def _lake(self) -> tuple[bool, str]:
        root = str(self.lake)
        if "://" in root:
            return True, "object store (not probed)"
        probe = Path(root) / f".ready-probe-{uuid.uuid4().hex[:8]}"
        try:
            Path(root).mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"x")
            probe.unlink()
            return True, "writable"
        except OSError as exc:
            return False, f"not writable: {exc.strerror or exc}"

    def _progress(self) -> tuple[bool, str]:
        age = last_commit_age()
        lag = sum(partition_lag().values())
        if age > self.stalled_after and (lag > 0 or not self.needs_lag):
            return False, f"last commit {age:.0f}s ago with {lag} records of lag"
        return True, f"last commit {age:.0f}s ago, lag {lag}"

    def report(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        checks: dict[str, tuple[bool, str]] = {}
        if self.kafka_config:
            checks["broker"] = self._cached("broker", self._broker)
        if self.lake:
            checks["lake"] = self._cached("lake", self._lake)
        checks["progress"] = self._progress()
        body = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()}
        return all(ok for ok, _ in checks.values()), body


# -- the HTTP server ----------------------------------------------------------------------------
class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def _app(readiness: Readiness) -> Callable:
    from prometheus_client import make_wsgi_app

    metrics_app = make_wsgi_app()

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok, body = readiness.report()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps({"ready": ok, "checks": body}).encode()]
        return metrics_app(environ, start_response)

    return app


def serve(port: int, readiness: Readiness, host: str = "127.0.0.1") -> int:
    """Turn the hooks on and serve /metrics, /healthz, /readyz on a daemon thread; returns the port."""
    global _enabled, _started
    from prometheus_client.exposition import ThreadingWSGIServer

    _build()
    server = make_server(host, port, _app(readiness), ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="finpulse-metrics", daemon=True).start()
    _enabled, _started = True, time.time()
    log.info("metrics on http://%s:%d/metrics (also /healthz, /readyz)", host, server.server_port)
    return server.server_port
