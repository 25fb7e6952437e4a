"""The alerts' delivery outbox (lake/outbox.py, alerts/delivery.py) on local and object-store lakes.

The end-to-end case runs `finpulse alerts --follow --routes` against an s3:// lake on a moto
server and SIGKILLs it in the middle of delivering three routed alerts to a local HTTP receiver.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.alerts import post, routes_file
from support.processes import FINPULSE, wait_until

from finpulse.pipeline.alerts import notify
from finpulse.pipeline.alerts.delivery import Webhook, delivered_ids, drain
from finpulse.pipeline.alerts.evaluate import run_alerts
from finpulse.pipeline.alerts.routes import load_routes
from finpulse.pipeline.lake import outbox
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.outbox import Ledger, RecordLog
from finpulse.pipeline.lake.storage import open_storage
from finpulse.pipeline.runtime.settings import AlertSettings


# -- the log ---------------------------------------------------------------------------------------
def test_a_record_log_keeps_order_merges_its_segments_and_reads_a_half_done_merge_once(tmp_path, monkeypatch):
    log = RecordLog(tmp_path, "n")
    assert log.read() is None
    for i in range(outbox.COMPACT_AT + 3):
        log.append([{"id": f"r{i}", "v": i}])
    assert [r["v"] for r in log.read() or []] == list(range(outbox.COMPACT_AT + 3))
    segments = open_storage(tmp_path).list("_outbox/n", ".jsonl")
    assert len(segments) == 3  # merged at COMPACT_AT + 1, then two more appends
    # a merge that dies after writing the merged segment, before deleting the old ones
    monkeypatch.setattr(open_storage(tmp_path).__class__, "remove", lambda self, rel: None)
    for i in range(outbox.COMPACT_AT):
        log.append([{"id": f"s{i}", "v": 100 + i}])
    monkeypatch.undo()
    fresh = RecordLog(tmp_path, "n").read() or []
    assert len(open_storage(tmp_path).list("_outbox/n", ".jsonl")) > outbox.COMPACT_AT  # duplicates on disk
    assert [r["v"] for r in fresh] == list(range(outbox.COMPACT_AT + 3)) + [100 + i for i in range(outbox.COMPACT_AT)]


def test_a_new_destination_starts_after_what_exists_and_a_failing_one_keeps_its_messages(tmp_path):
    class Flaky(Webhook):
        def __init__(self) -> None:
            super().__init__("http://127.0.0.1:9/x")
            self.up, self.got = False, []

        def send(self, message_id, item):
            if self.up:
                self.got.append(message_id)
            return self.up

    hook = Flaky()
    Ledger(tmp_path, hook.key).open(["m0"])
    messages = [(f"m{i}", None) for i in range(4)]
    assert drain(tmp_path, hook, messages, retries=1, backoff=0) == {"sent": 0, "held": 0, "failed": 1, "skipped": 0}
    hook.up = True
    assert drain(tmp_path, hook, messages, retries=0)["sent"] == 3
    assert drain(tmp_path, hook, messages, retries=0)["sent"] == 0
    assert hook.got == ["m1", "m2", "m3"] and delivered_ids(tmp_path, hook.key) == {"m0", "m1", "m2", "m3"}


def test_ledgers_and_the_notice_log_of_an_older_lake_are_adopted_not_replayed(tmp_path):
    """A lake written before the outbox kept LAKE/_delivery/<hash>.ids and LAKE/_notify/: those
    are read once into the outbox, so nothing already sent goes out again and nothing pending is lost."""
    import hashlib

    from support.alerts import notice

    from finpulse.pipeline.alerts.routes import parse_routes

    routes = parse_routes({"route": [{"name": "desk", "urls": ["json://127.0.0.1:1/x"]}]})
    key = hashlib.sha256(b"desk\x1fjson://127.0.0.1:1/x").hexdigest()[:16]
    (tmp_path / "_notify").mkdir()
    (tmp_path / "_notify" / "notices.jsonl").write_text(
        json.dumps({"historic": ["a-0"]}) + "\n"
        + "".join(json.dumps(notice(alert_id=f"a-{i}").to_json()) + "\n" for i in (1, 2)) + '{"torn')
    (tmp_path / "_notify" / f"dest-{key}.sent").write_text("alert:a-1 1700000000.5\n")
    channel = hashlib.sha256(b"webhook:http://h/x").hexdigest()[:16]
    (tmp_path / "_delivery").mkdir()
    (tmp_path / "_delivery" / f"{channel}.ids").write_text("a-7\na-8\n")
    notify.open_outbox(tmp_path, routes, {"a-0", "a-1", "a-2", "a-9"})
    historic, notices = notify.read_log(tmp_path)
    assert historic == {"a-0"} and [n.notice_id for n in notices] == ["alert:a-1", "alert:a-2"]
    sent: list[str] = []
    counts = notify.deliver(tmp_path, routes, send=lambda url, title, body: sent.append(url) or True)
    assert counts["sent"] == 1 and sent == ["json://127.0.0.1:1/x?+Idempotency-Key=alert%3Aa-2"]
    assert delivered_ids(tmp_path, "webhook:http://h/x") == {"a-7", "a-8"}


# -- a SIGKILL in the middle of routed delivery, on S3 ---------------------------------------------
TICKERS = ("AAPL", "MSFT", "BA")


class KillingReceiver:
    """A JSON webhook (apprise json://) that counts deliveries per alert id and SIGKILLs the
    sender at chosen POSTs: `kills` maps a POST's number to whether that message is accepted
    first (killed after accepting, before answering: the sender never learns it arrived) or not
    (killed before accepting)."""

    def __init__(self, kills: dict[int, bool]) -> None:
        self.deliveries: list[tuple[str, str]] = []  # (alert id from the body, Idempotency-Key)
        self.posts, self.pid = 0, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts += 1
                accept = kills.get(outer.posts, True)
                if accept:
                    alert = body["message"].rsplit("\nalert ", 1)[1].strip()
                    outer.deliveries.append((alert, self.headers.get("Idempotency-Key", "")))
                if outer.posts in kills:
                    os.kill(outer.pid, signal.SIGKILL)
                self.send_response(200 if accept else 500)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_port}/hook"

    def per_alert(self) -> list[int]:
        """Deliveries of each alert, in the order the alerts first arrived."""
        return list(Counter(alert for alert, _ in self.deliveries).values())

    def deduplicated(self) -> list[int]:
        """The same, for a receiver that drops a repeated Idempotency-Key."""
        return list(Counter(alert for alert, _ in dict.fromkeys(self.deliveries)).values())


def hours(lake: str, first: int, last: int, negatives: dict[str, int]) -> None:
    """Hours [first, last) of 30 posts per ticker, 6 negative unless `negatives` says otherwise."""
    for ticker in TICKERS:
        source = f"{ticker}-{first}"
        rows = [post(h * 100 + j, h, j < negatives.get(ticker, 6), ticker=ticker)
                for h in range(first, last) for j in range(30)]
        rows = [Row("enriched", r.data, source, i, r.date) for i, r in enumerate(rows)]
        Lake(lake).commit(source, 0, len(rows), rows)


@pytest.mark.slow  # moto and three `finpulse alerts --follow` processes
def test_routed_alerts_on_an_s3_lake_reach_the_desk_once_across_sigkills_mid_delivery(s3, tmp_path):  # noqa: F811
    """Three alerts (A, B, C) are routed to a desk. The follower is SIGKILLed while the receiver
    holds B, before accepting it; the next follower is SIGKILLed while the receiver holds C, after
    accepting it (before the sender could write its ledger); a third follower finishes. A and B
    arrive exactly once; C twice with the same Idempotency-Key, so a receiver deduplicating on
    it has each alert exactly once (the guarantee docs/ALERTS.md states). Another pass sends
    nothing."""
    url = s3()
    receiver = KillingReceiver({2: False, 4: True})
    routes = routes_file(tmp_path, {"name": "desk", "urls": [receiver.url]})
    hours(url, 0, 30, {})
    assert run_alerts(url, AlertSettings(), routes=load_routes(routes)) == []  # routing begins: nothing yet
    hours(url, 30, 31, dict.fromkeys(TICKERS, 21))
    follow = FINPULSE + ["alerts", "--lake", url, "--follow", "--interval", "1", "--routes", str(routes)]
    logs = tmp_path / "alerts.log"
    with open(logs, "wb") as out:
        for posts in (2, 4):  # each killed at its receiver's chosen POST
            killed = subprocess.Popen(follow, stdout=out, stderr=subprocess.STDOUT)
            receiver.pid = killed.pid
            assert killed.wait(120) == -signal.SIGKILL, logs.read_text()[-3000:]
            assert receiver.posts == posts
        assert receiver.per_alert() == [1, 1, 1]  # A; B from the second follower; C accepted, not recorded
        last = subprocess.Popen(follow, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: receiver.posts == 5, 120, "the third follower's delivery",
                       detail=lambda: logs.read_text()[-3000:])
        finally:
            last.kill()
            last.wait()
    assert run_alerts(url, AlertSettings(), routes=load_routes(routes)) == []
    assert receiver.posts == 5 and receiver.per_alert() == [1, 1, 2], receiver.deliveries
    assert receiver.deduplicated() == [1, 1, 1]
    assert all(key == f"alert:{alert}" for alert, key in receiver.deliveries)
    assert len(notify.sent_log(url, "desk", receiver.url) or {}) == 3
    assert not os.path.exists("s3:")  # the outbox is in the bucket, not in a local folder named after the URL


def test_a_merge_by_another_process_during_a_read_does_not_empty_the_log(tmp_path):
    # Another follower merges the segments between this reader's listing and its reads: the reader
    # must see every record, not an empty ledger (which would send every alert again).
    writer = RecordLog(tmp_path, "sent-x")
    for i in range(outbox.COMPACT_AT):
        writer.append([{"id": f"m{i}", "at": i}])
    reader = RecordLog(tmp_path, "sent-x")
    merger = RecordLog(tmp_path, "sent-x")
    plain_read = reader.storage.read_text
    merged = []

    def read_text(name):
        if not merged:  # the first segment read: the other process merges right now
            merged.append(True)
            merger.compact()
        return plain_read(name)

    reader.storage.read_text = read_text  # type: ignore[method-assign]
    assert sorted(r["id"] for r in reader.read() or []) == sorted(f"m{i}" for i in range(outbox.COMPACT_AT))
    assert merged  # the merge did happen mid-read
