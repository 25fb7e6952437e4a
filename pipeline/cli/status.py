"""`finpulse status --lake L [--bootstrap B]`: one screen an operator reads first.

Lag per partition (the broker's log end minus the lake's committed position: the lake, not the
Kafka group, is the truth), the last commit and its age, rows and dead letters committed today
(UTC, by ingestion time), and the latest alerts. Works without a broker (no lag then) and on
an empty or missing lake (zeros), because it is what one runs when something looks wrong.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from finpulse.pipeline.cli.options import Topics, bootstrap_option, lake_option, validated


def kafka_lag(committed: dict[str, int], kafka_config: dict[str, Any], topics: list[str] | None = None,
              lake: str | None = None) -> list[dict]:
    """Per partition of the topics the lake has progress for (plus `topics`): end, committed, lag.
    Partitions of `topics` not in `committed` are looked up in the lake's log (Delta cannot list
    its transactions, so `committed` only knows partitions that have rows)."""
    from kafka import KafkaConsumer, TopicPartition

    from finpulse.pipeline.messages import OFFSET_MASK

    ours = {}
    for source, end in committed.items():
        if source.startswith("kafka."):
            topic, _, partition = source[len("kafka.") :].rpartition(".")
            ours[(topic, int(partition))] = end & OFFSET_MASK
    consumer = KafkaConsumer(**kafka_config, request_timeout_ms=5000, enable_auto_commit=False, group_id=None)
    try:
        wanted = sorted({t for t, _ in ours} | set(topics or []))
        tps = [TopicPartition(t, p) for t in wanted for p in sorted(consumer.partitions_for_topic(t) or [])]
        if lake is not None:
            from finpulse.pipeline.lake.commit import Lake, source_key

            missing = [tp for tp in tps if (tp.topic, tp.partition) not in ours]
            found = Lake(lake).all_committed(source_key(tp.topic, tp.partition) for tp in missing)
            for tp in missing:
                if found.get(source_key(tp.topic, tp.partition)):
                    ours[(tp.topic, tp.partition)] = found[source_key(tp.topic, tp.partition)] & OFFSET_MASK
        ends = _log_ends(consumer, tps, ours) if tps else {}
    finally:
        consumer.close()
    return [
        {
            "topic": tp.topic,
            "partition": tp.partition,
            "end": ends[tp],
            "committed": ours.get((tp.topic, tp.partition), 0),
            "lag": max(0, ends[tp] - ours.get((tp.topic, tp.partition), 0)),
        }
        for tp in tps
    ]


def _log_ends(consumer: Any, tps: list, ours: dict, timeout: float = 3.0) -> dict:
    """Log end offsets as the high watermark of a fetch: some Kafka-compatible brokers (Tansu)
    answer ListOffsets with the last batch's start, not the log end; fetch responses are right."""
    import time

    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, max(0, ours.get((tp.topic, tp.partition), 0) - 1))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in tps):
        consumer.poll(timeout_ms=200, max_records=1)
    listed = consumer.end_offsets(tps)
    return {tp: max(consumer.highwater(tp) or 0, listed.get(tp) or 0) for tp in tps}


def last_commit(lake: str) -> datetime | None:
    """When the lake last committed: the newest commit timestamp of its enriched and deadletter
    tables (from the Delta logs, local or object store)."""
    from finpulse.pipeline.lake.tables import history_times

    stamps = [h[0]["timestamp"] for t in ("enriched", "deadletter") if (h := history_times(lake, t, 1))]
    return datetime.fromtimestamp(max(stamps) / 1000, timezone.utc) if stamps else None


def collect(
    lake: str, kafka_config: dict[str, Any] | None = None, topics: list[str] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    from finpulse.pipeline.lake.commit import Lake
    from finpulse.pipeline.lake.query import connect

    now = now or datetime.now(timezone.utc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    out: dict[str, Any] = {"lake": lake, "now": now.isoformat()}
    committed = Lake(lake).all_committed() if "://" in lake or Path(lake).exists() else {}
    if kafka_config:
        try:
            out["lag"] = kafka_lag(committed, kafka_config, topics, lake)
        except Exception as exc:  # noqa: BLE001 - say so on the screen, show the rest
            out["lag_error"] = f"{type(exc).__name__}: {exc}"
    last = last_commit(lake)
    out["last_commit"] = last.isoformat() if last else None
    out["last_commit_age_s"] = round((now - last).total_seconds(), 1) if last else None
    con = connect(lake)
    try:
        for key, table in (("rows_today", "enriched"), ("dead_letters_today", "deadletter")):
            row = con.execute(f"select count(*) from {table} where ingested_at >= ?", [midnight]).fetchone()
            out[key] = row[0] if row else 0
        alerts = con.execute("""select created_at, severity, key_kind, key, observed_share, baseline_share, volume
                                from alerts order by created_at desc, window_end desc limit 5""").fetchall()
    finally:
        con.close()
    out["latest_alerts"] = [
        {
            "created_at": a[0].isoformat(),
            "severity": a[1],
            "key": f"{a[2]}:{a[3]}",
            "observed": a[4],
            "baseline": a[5],
            "volume": a[6],
        }
        for a in alerts
    ]
    return out


def render(s: dict[str, Any]) -> str:
    lines = [f"finpulse status  {s['lake']}  at {s['now'][:19]}Z"]
    if "lag" in s:
        total = sum(p["lag"] for p in s["lag"])
        lines.append(f"\nlag per partition (total {total:,}):")
        lines += [
            f"  {p['topic']}-{p['partition']:<3} end {p['end']:>10,}  "
            f"committed {p['committed']:>10,}  lag {p['lag']:>8,}"
            for p in s["lag"]
        ]
    elif "lag_error" in s:
        lines.append(f"\nlag: broker not reachable ({s['lag_error']})")
    else:
        lines.append("\nlag: give --bootstrap to compare with the broker")
    age = s["last_commit_age_s"]
    lines.append(f"\nlast commit: {s['last_commit'] or 'never'}" + (f" ({age:,.0f} s ago)" if age is not None else ""))
    lines.append(f"rows today: {s['rows_today']:,}   dead letters today: {s['dead_letters_today']:,}")
    lines.append("\nlatest alerts:" if s["latest_alerts"] else "\nlatest alerts: none")
    lines += [
        f"  {a['created_at'][:19]}  {a['severity']:<8} {a['key']:<20} {a['observed']:.0%} vs {a['baseline']:.0%} "
        f"(n={a['volume']})"
        for a in s["latest_alerts"]
    ]
    return "\n".join(lines)


@click.command()
@lake_option()
@bootstrap_option(help="Kafka bootstrap, to show lag per partition")
@click.option("--topics", type=Topics(many=True), default=None,
              help="comma-separated topics to include even before their first commit")
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of the screen")
def status(lake: str, bootstrap: str | None, topics: str | None, as_json: bool) -> None:
    """Lag per partition, last commit, rows and dead letters today, the latest alerts."""
    from finpulse.pipeline.runtime.settings import KafkaSettings

    config = validated(KafkaSettings, bootstrap=bootstrap).client_config(reader=True) if bootstrap else None
    s = collect(lake, config, topics.split(",") if topics else None)
    click.echo(json.dumps(s) if as_json else render(s))
