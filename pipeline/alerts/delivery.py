"""Delivery of recorded alerts to webhooks and Kafka, with an outbox per channel.

The alerts table is the channels' outbox: a channel's ledger (LAKE/_delivery/) lists the alerts
it has had, so a crash between recording and sending loses nothing; a channel used for the
first time starts after the alerts already recorded.
"""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from finpulse.pipeline.lake.query import connect
from finpulse.pipeline.lake.storage import open_storage
from finpulse.schemas.records import AlertRecord

log = logging.getLogger(__name__)


def delivery_key(alert: AlertRecord) -> str:
    """What a channel records as sent: the id, plus the revision for an escalation."""
    return alert.alert_id if not alert.revision else f"{alert.alert_id}#{alert.revision}"


# -- delivery: an outbox per channel, so a crash between recording and sending loses nothing ----
def _delivered_rel(channel: str) -> str:
    return "_delivery/" + hashlib.sha256(channel.encode()).hexdigest()[:16] + ".ids"


def delivered_ids(lake: str | Path, channel: str) -> set[str] | None:
    """Alert ids already sent on a channel (None: the channel has never been used on this lake)."""
    text = open_storage(lake).read_text(_delivered_rel(channel))
    return None if text is None else set(text.split())


def mark_delivered(lake: str | Path, channel: str, ids: list[str]) -> None:
    """Add ids to the channel's outbox record, replacing it atomically (locally with fsync; one
    PUT on an object store), so the record is never torn."""
    storage = open_storage(lake)
    before = storage.read_text(_delivered_rel(channel)) or ""
    storage.put_atomic(_delivered_rel(channel), (before + "".join(f"{i}\n" for i in ids)).encode())


def recorded_alerts(lake: str | Path) -> list[AlertRecord]:
    """Every recorded alert, oldest first."""
    con = connect(lake)
    try:
        rows = con.sql("select * from alerts order by created_at, alert_id").to_arrow_table().to_pylist()
    finally:
        con.close()
    return [AlertRecord(**r) for r in rows]


def pending(lake: str | Path, channel: str) -> list[AlertRecord]:
    """Recorded alerts (latest revision each) not yet delivered on the channel, oldest first;
    an escalation is pending again under `alert_id#revision`."""
    done = delivered_ids(lake, channel) or set()
    return [a for a in recorded_alerts(lake) if delivery_key(a) not in done]


def deliver(lake: str | Path, webhook: str | None, kafka_config: dict | None, kafka_topic: str | None) -> int:
    """Send every recorded alert a channel has not had yet; at least once (a crash after sending
    and before marking resends it; receivers deduplicate by alert_id, the Kafka message key)."""
    sent = 0
    if webhook:
        channel = f"webhook:{webhook}"
        for a in pending(lake, channel):
            if not post_webhook(webhook, a):
                log.error("could not deliver alert %s to %s; it is recorded in the lake and retried next time", a.alert_id, webhook)
                break  # keep the order; try again on the next evaluation
            mark_delivered(lake, channel, [delivery_key(a)])
            sent += 1
    if kafka_config and kafka_topic:
        channel = f"kafka:{','.join(kafka_config.get('bootstrap_servers', []))}/{kafka_topic}"
        todo = pending(lake, channel)
        if todo:
            publish_kafka(kafka_config, kafka_topic, todo)
            mark_delivered(lake, channel, [delivery_key(a) for a in todo])
            sent += len(todo)
    return sent


def open_channels(lake: str | Path, webhook: str | None, kafka_config: dict | None, kafka_topic: str | None) -> None:
    """A channel used for the first time starts after the alerts already recorded (no replay of history)."""
    channels = ([f"webhook:{webhook}"] if webhook else []) + \
        ([f"kafka:{','.join(kafka_config.get('bootstrap_servers', []))}/{kafka_topic}"] if kafka_config and kafka_topic else [])
    for channel in channels:
        if delivered_ids(lake, channel) is None:
            mark_delivered(lake, channel, sorted(delivery_key(a) for a in pending(lake, channel)))


def post_webhook(url: str, alert: AlertRecord, retries: int = 3, timeout: float = 5.0, backoff: float = 0.5) -> bool:
    """POST the alert as JSON; retries with exponential backoff; False if every try failed."""
    body = alert.model_dump_json().encode()
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                if 200 <= resp.status < 300:
                    return True
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            log.warning("webhook %s failed (attempt %d/%d): %s", url, attempt + 1, retries + 1, exc)
        time.sleep(backoff * 2**attempt)
    return False


def publish_kafka(client_config: dict, topic: str, alerts: list[AlertRecord]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**client_config, acks="all", retries=5)
    try:
        for a in alerts:
            producer.send(topic, a.model_dump_json().encode(), key=a.alert_id.encode())
        producer.flush(timeout=30)
    finally:
        producer.close()
