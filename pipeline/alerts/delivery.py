"""Sending alerts on: every destination behind one interface, one outbox, one retry helper.

A destination is a webhook (`--webhook`), a Kafka topic (`--kafka-topic`) or an apprise URL of
a route (`--routes`, notify.py). Each is a `Destination`: a `key` that names its ledger and a
`send` of one message that says whether the receiver accepted it. `drain` walks a
destination's messages in order, skips what its ledger holds, sends the rest through `retry`,
and records each acceptance in the ledger right after it. The ledgers are lake/outbox.py
records on the lake's own storage, so one code path serves a local and an `s3://` lake.

What is sent: webhook and Kafka get the recorded alerts (the `alerts` table is their outbox);
routes get the notices notify.py plans into its notice log. A destination used for the first
time starts after what exists (`open_destination`), so switching one on never replays history.

The guarantee is at least once; once, except for one window: a process killed after a receiver
accepted a message and before its ledger write sends that message again on restart. Nothing
can close that window from the sender's side (the send and the ledger write are two systems),
so each message carries its id for the receiver to deduplicate on: the `Idempotency-Key`
header (webhook; apprise's json/form/xml URLs), the Kafka message key and header.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from finpulse.pipeline.lake.outbox import Ledger
from finpulse.pipeline.lake.query import connect
from finpulse.pipeline.lake.storage import open_storage
from finpulse.schemas.records import AlertRecord

log = logging.getLogger(__name__)
RETRIES = 2  # tries after the first, per message and pass
BACKOFF_S = 0.5  # before the n-th retry: BACKOFF_S * 2**(n-1)
Sender = Callable[[str, str, str], bool]  # apprise-style (url, title, body) -> accepted


def retry(attempt: Callable[[], bool], label: str, retries: int = RETRIES, backoff: float = BACKOFF_S) -> bool:
    """Call `attempt` until it returns True, at most `retries` more times, with exponential
    backoff; False if every try failed. An exception is a failed try (logged by type only:
    destinations carry secrets in their URLs)."""
    for n in range(retries + 1):
        try:
            if attempt():
                return True
            why = "not accepted"
        except Exception as exc:  # noqa: BLE001 - one destination's failure must not stop the others
            why = type(exc).__name__
        log.warning("%s: try %d/%d failed (%s)", label, n + 1, retries + 1, why)
        if n < retries:
            time.sleep(backoff * 2**n)
    return False


def redact(url: str) -> str:
    """Destinations carry secrets (webhook tokens, passwords): log the scheme and host only."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/…"


class Destination(ABC):
    """Where messages go. `key` names its ledger (stable across runs); `label` is safe to log;
    `legacy` is where a lake written before lake/outbox.py kept this destination's ledger."""

    key: str
    label: str
    legacy: str | None = None

    @abstractmethod
    def send(self, message_id: str, item: Any) -> bool:
        """One message; True once the receiver accepted it. May raise (a failed try)."""

    def close(self) -> None:
        """Release connections (called at the end of a pass)."""
        return None


class Webhook(Destination):
    """POST the alert as JSON, with its delivery key as `Idempotency-Key`."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url, self.timeout = url, timeout
        self.key, self.label = f"webhook:{url}", f"webhook {redact(url)}"
        self.legacy = _legacy_channel(self.key)

    def send(self, message_id: str, item: Any) -> bool:
        req = urllib.request.Request(self.url, data=item.model_dump_json().encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Idempotency-Key": message_id})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return bool(200 <= resp.status < 300)


class KafkaTopic(Destination):
    """Publish the alert as JSON keyed by alert_id (a compacted topic keeps the latest revision),
    one acknowledged message at a time, so the ledger never records an unacknowledged one."""

    def __init__(self, client_config: dict, topic: str, timeout: float = 30.0) -> None:
        self.client_config, self.topic, self.timeout = client_config, topic, timeout
        self.key = f"kafka:{','.join(client_config.get('bootstrap_servers', []))}/{topic}"
        self.label, self.legacy = f"kafka topic {topic}", _legacy_channel(self.key)
        self._producer: Any = None

    def send(self, message_id: str, item: Any) -> bool:
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(**self.client_config, acks="all", retries=5)
        future = self._producer.send(self.topic, item.model_dump_json().encode(), key=item.alert_id.encode(),
                                     headers=[("idempotency-key", message_id.encode())])
        future.get(timeout=self.timeout)  # raises if the broker did not acknowledge it
        return True

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None


IDEMPOTENT_SCHEMES = ("json", "jsons", "form", "forms", "xml", "xmls")  # apprise's generic webhooks


def apprise_send(url: str, title: str, body: str) -> bool:
    """One message through apprise (Slack, Teams, mailto, PagerDuty, Telegram, json://, ...)."""
    import apprise

    app = apprise.Apprise()
    if not app.add(url):
        log.error("routes: %s is not an apprise URL apprise can use", redact(url))
        return False
    return bool(app.notify(title=title, body=body))


class AppriseTarget(Destination):
    """One URL of a route. Messages are routes.Notice; on apprise's generic webhooks
    (json://, form://, xml://) the notice id goes out as an `Idempotency-Key` header (apprise's
    `+Header=value` URL parameter); Slack, email and the like have nowhere to carry one."""

    def __init__(self, route: str, url: str, render: Callable[[Any], tuple[str, str]], sender: Sender) -> None:
        self.route, self.url, self.render, self.sender = route, url, render, sender
        self.key, self.label = f"{route}\x1f{url}", f"route {route}: {redact(url)}"
        self.legacy = f"_notify/dest-{hashlib.sha256(self.key.encode()).hexdigest()[:16]}.sent"

    def send(self, message_id: str, item: Any) -> bool:
        title, body = self.render(item)
        return self.sender(with_idempotency_key(self.url, message_id), title, body)


def with_idempotency_key(url: str, message_id: str) -> str:
    if url.partition("://")[0].lower() not in IDEMPOTENT_SCHEMES:
        return url
    return f"{url}{'&' if '?' in url else '?'}+Idempotency-Key={quote(message_id, safe='')}"


# -- the outbox: what each destination has had --------------------------------------------------
def _legacy_channel(key: str) -> str:
    return "_delivery/" + hashlib.sha256(key.encode()).hexdigest()[:16] + ".ids"


def ledger(lake: str | Path, destination: Destination | str) -> tuple[Ledger, dict[str, float] | None]:
    """The destination's ledger and what it holds (None: never used on this lake). A ledger kept
    by an older finpulse (LAKE/_delivery/*.ids, LAKE/_notify/dest-*.sent) is adopted once."""
    key = destination if isinstance(destination, str) else destination.key
    book = Ledger(lake, key)
    sent = book.sent()
    legacy = _legacy_channel(key) if isinstance(destination, str) else destination.legacy
    if sent is None and legacy:
        text = open_storage(lake).read_text(legacy)
        if text is not None:
            sent = _parse_legacy(text)
            book.log.append(({"id": i, "at": t} for i, t in sent.items()), create=True)
    return book, sent


def _parse_legacy(text: str) -> dict[str, float]:
    """`id` or `id unixtime` per line; a torn last line (a crash mid-append) was never recorded."""
    out: dict[str, float] = {}
    for line in text[: text.rfind("\n") + 1].splitlines():
        ident, _, at = line.strip().partition(" ")
        if ident:
            out[ident] = float(at or 0)
    return out


def open_destination(lake: str | Path, destination: Destination | str, ids: Callable[[], Sequence[str]]) -> None:
    """First use of a destination on this lake: it starts after `ids()` (no replay of history)."""
    book, sent = ledger(lake, destination)
    if sent is None:
        book.open(ids())


Decide = Callable[[Any, list[float]], str]


def drain(lake: str | Path, destination: Destination, messages: Sequence[tuple[str, Any]],
          decide: Decide | None = None, observe: Callable[[str], None] = lambda outcome: None,
          retries: int = RETRIES, backoff: float = BACKOFF_S) -> dict[str, int]:
    """Send a destination its pending messages (`(id, item)`, oldest first), in order.

    `decide(item, sent_at)` may say 'stale' (recorded as done, never sent), 'quiet' (held; the
    ones behind it still go) or anything else but 'send' (held; the rest wait behind it, so an
    update never overtakes what it updates). A message that fails every try stops this
    destination until the next pass; other destinations are not affected. Returns counts."""
    book, done = ledger(lake, destination)
    done = done or {}
    sent_at = sorted(done.values())
    counts = {"sent": 0, "held": 0, "failed": 0, "skipped": 0}
    try:
        for message_id, item in messages:
            if message_id in done:
                continue
            decision = decide(item, sent_at) if decide else "send"
            if decision == "stale":
                book.mark([message_id], 0.0)
                counts["skipped"] += 1
                observe("skipped_stale")
                continue
            if decision != "send":
                counts["held"] += 1
                observe(f"held_{decision}")
                if decision == "quiet":
                    continue
                break
            if not retry(functools.partial(destination.send, message_id, item), destination.label, retries, backoff):
                counts["failed"] += 1
                observe("failed")
                log.error("%s did not accept %s; kept, retried next pass", destination.label, message_id)
                break
            at = time.time()
            book.mark([message_id], at)
            sent_at.append(at)
            counts["sent"] += 1
            observe("sent")
    finally:
        destination.close()
    return counts


# -- webhook and Kafka: the recorded alerts -------------------------------------------------------
def delivery_key(alert: AlertRecord) -> str:
    """What a channel records as sent: the id, plus the revision for an escalation."""
    return alert.alert_id if not alert.revision else f"{alert.alert_id}#{alert.revision}"


def recorded_alerts(lake: str | Path) -> list[AlertRecord]:
    """Every recorded alert, oldest first."""
    con = connect(lake)
    try:
        rows = con.sql("select * from alerts order by created_at, alert_id").to_arrow_table().to_pylist()
    finally:
        con.close()
    return [AlertRecord(**r) for r in rows]


def channels(webhook: str | None, kafka_config: dict | None, kafka_topic: str | None) -> list[Destination]:
    out: list[Destination] = [Webhook(webhook)] if webhook else []
    if kafka_config and kafka_topic:
        out.append(KafkaTopic(kafka_config, kafka_topic))
    return out


def delivered_ids(lake: str | Path, channel: str) -> set[str] | None:
    """Alert delivery keys already sent on a channel (None: never used on this lake)."""
    sent = ledger(lake, channel)[1]
    return None if sent is None else set(sent)


def mark_delivered(lake: str | Path, channel: str, ids: list[str]) -> None:
    ledger(lake, channel)[0].mark(ids, time.time())


def pending(lake: str | Path, channel: str) -> list[AlertRecord]:
    """Recorded alerts (latest revision each) not yet delivered on the channel, oldest first;
    an escalation is pending again under `alert_id#revision`."""
    done = delivered_ids(lake, channel) or set()
    return [a for a in recorded_alerts(lake) if delivery_key(a) not in done]


def open_channels(lake: str | Path, webhook: str | None, kafka_config: dict | None, kafka_topic: str | None) -> None:
    """A channel used for the first time starts after the alerts already recorded."""
    for destination in channels(webhook, kafka_config, kafka_topic):
        open_destination(lake, destination, lambda: sorted(delivery_key(a) for a in recorded_alerts(lake)))


def deliver(lake: str | Path, webhook: str | None, kafka_config: dict | None, kafka_topic: str | None) -> int:
    """Send every recorded alert a channel has not had yet, in order; returns how many were sent."""
    destinations = channels(webhook, kafka_config, kafka_topic)
    if not destinations:
        return 0
    alerts = [(delivery_key(a), a) for a in recorded_alerts(lake)]
    return sum(drain(lake, d, alerts)["sent"] for d in destinations)


def post_webhook(url: str, alert: AlertRecord, retries: int = RETRIES, timeout: float = 5.0,
                 backoff: float = BACKOFF_S) -> bool:
    """POST one alert (with retries); False if every try failed."""
    hook = Webhook(url, timeout)
    return retry(lambda: hook.send(delivery_key(alert), alert), hook.label, retries, backoff)


__all__ = ["AppriseTarget", "Destination", "KafkaTopic", "Webhook", "apprise_send", "channels", "deliver",
           "delivered_ids", "delivery_key", "drain", "ledger", "mark_delivered", "open_channels",
           "open_destination", "pending", "post_webhook", "recorded_alerts", "redact", "retry"]
