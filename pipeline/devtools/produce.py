"""Publishing records to Kafka: archive lines or generated posts, optionally rate-limited."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def file_messages(path: str | Path) -> Iterator[bytes]:
    """Raw lines of a JSONL file, sent as they are (bad lines included: the stream dead-letters them)."""
    with open(path, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if line:
                yield line


def publish(client_config: dict[str, Any], topic: str, messages: Iterable[bytes], rate: float | None = None,
            partition_of=None, progress: bool = False) -> int:
    """Send messages (keyed round-robin across partitions by Kafka's default partitioner); returns count."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**client_config, max_request_size=16 * 1024 * 1024, linger_ms=5, acks="all", retries=10)
    sent = 0
    started = time.monotonic()
    try:
        for msg in messages:
            kwargs = {"partition": partition_of(sent)} if partition_of else {}
            producer.send(topic, msg, **kwargs)
            sent += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if progress and sent % 1000 == 0:
                print(f"sent {sent}", flush=True)
        producer.flush()
    finally:
        producer.close()
    return sent


def post_messages(posts: Iterable[dict]) -> Iterator[bytes]:
    for p in posts:
        yield json.dumps(p).encode()
