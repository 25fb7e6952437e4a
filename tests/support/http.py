"""Talking to a process's HTTP endpoints: a free port, /metrics scraped into numbers, GET with JSON."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    """`name{label="v",...}` -> value, from the stream's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def get(port: int, path: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            body = r.read().decode()
            return r.status, json.loads(body) if path == "/readyz" else body
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return 0, ""

