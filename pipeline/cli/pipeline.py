"""`finpulse broker|produce|stream|backfill|query|alerts`: thin click wrappers over finpulse.pipeline."""

from __future__ import annotations

import json
import sys

import click

from finpulse.models.artifacts.profiles import chosen_registry
from finpulse.pipeline.cli.options import (
    COUNT,
    KEY_KINDS,
    RATE,
    SECONDS,
    AsOf,
    BucketWidth,
    Float,
    Glob,
    Host,
    HostPorts,
    Int,
    IsoTime,
    Parsed,
    Port,
    Topics,
    WebUrl,
    announce_new_lake,
    bootstrap_option,
    check_runner,
    device_option,
    lake_option,
    metrics_options,
    parse_time,
    precision_option,
    registry_option,
    require_lake,
    runner_options,
    setup_logging,
    shared_model_option,
    validated,
    verbose_option,
    worker_args,
    workers_option,
)
from finpulse.pipeline.runtime.settings import KafkaSettings, StreamSettings


@click.command()
@click.option("--port", type=Port(), default=9092, show_default=True)
@click.option("--host", type=Host(), default="127.0.0.1", show_default=True)
def broker(port: int, host: str) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in-memory) in the foreground."""
    import os

    from finpulse.infra.broker import broker_command

    cmd = broker_command(port, host)
    click.echo(f"broker on {host}:{port} (in-memory storage; data is gone when it stops)", err=True)
    os.execv(cmd[0], cmd)


def _event(spec: str) -> object:
    from finpulse.pipeline.devtools.generator import Event

    return Event.parse(spec)


@click.command()
@bootstrap_option()
@click.option("--topic", type=Topics(), required=True)
@click.option("--file", "file_", type=click.Path(exists=True, dir_okay=False), help="JSONL file to publish line by line")
@click.option("--sample", type=COUNT, help="publish N generated posts")
@click.option("--rate", type=RATE, default=None, help="messages per second (default: as fast as possible)")
@click.option("--seed", type=Int(example="7"), default=7, show_default=True)
@click.option("--partitions", type=Int(min=1, example="3"), default=None,
              help="create the topic with this many partitions if missing")
@click.option("--inject", "inject", multiple=True, type=Parsed(_event, "event", "BA@2026-11-03T14:00:00Z,80"),
              help="with --sample: a negative event TICKER@ISO-TIME[,POSTS[,MINUTES]] (repeatable)")
@click.option("--span-hours", type=Float(min=0, min_open=True, example="72"), default=72.0, show_default=True,
              help="with --sample: time span of the posts")
def produce(bootstrap, topic, file_, sample, rate, seed, partitions, inject, span_hours) -> None:
    """Publish archive lines or generated posts to a topic."""
    from finpulse.infra.broker import create_topics
    from finpulse.pipeline.devtools.generator import generate_posts
    from finpulse.pipeline.devtools.produce import file_messages, post_messages, publish

    if (file_ is None) == (sample is None):
        raise click.UsageError("give exactly one of --file or --sample")
    kafka = validated(KafkaSettings, **({"bootstrap": bootstrap} if bootstrap else {}))
    if partitions:
        create_topics(kafka.bootstrap, {topic: partitions})
    events = tuple(inject)  # parsed by click (_event)
    messages = file_messages(file_) if file_ else post_messages(generate_posts(sample, seed=seed, span_hours=span_hours, events=events))
    n = publish(kafka.client_config(), topic, messages, rate)
    click.echo(json.dumps({"topic": topic, "sent": n}))


@click.command(context_settings={"ignore_unknown_options": True})
@bootstrap_option()
@click.option("--topics", type=Topics(many=True), default=None, help="comma-separated topics (default news,social)")
@lake_option()
@click.option("--group", default=None, help="Kafka group that mirrors the lake's progress (for lag monitoring)")
@click.option("--join-group", is_flag=True, default=None,
              help="read only the partitions Kafka's group coordinator assigns this process in --group: several "
                   "stream processes (any hosts) share the topics and the lake (docs/DEPLOY.md)")
@click.option("--max-records", type=COUNT, default=None, help="stop cleanly after this many records")
@click.option("--idle-exit", type=SECONDS, default=None, help="stop cleanly after this many seconds without records")
@registry_option()
@device_option()
@precision_option()
@click.option("--max-message-bytes", type=Int(min=1, example="1048576"), default=None,
              help="larger messages are dead-lettered (default 1 MiB)")
@click.option("--bundle-records", type=Int(min=1, example="256"), default=None,
              help="most records one bundle reads over all partitions before it commits (default 256)")
@click.option("--bundle-seconds", type=Float(min=0, min_open=True, example="1.0"), default=None,
              help="time a bundle aims for: its record limit follows the measured pace "
                   "(default 1.0; raise it for throughput)")
@click.option("--catchup-records", type=Int(min=1, example="2048"), default=None,
              help="while the stream is behind, bundles may grow to this many records, paced to "
                   "catchup_seconds (default 2048 and 5 s; set it to --bundle-records to keep bundles small)")
@metrics_options
@click.option("--source", type=click.Choice(["sdf", "xlang"]), default="sdf", show_default=True,
              help="sdf: the Python splittable-DoFn reader; xlang: Beam's Java KafkaIO (needs an expansion service)")
@click.option("--expansion-service", type=HostPorts(), default=None,
              help="with --source xlang: host:port of Beam's Java expansion service")
@click.option("--expansion-jar", type=click.Path(exists=True, dir_okay=False), default=None,
              help="with --source xlang: a local beam-sdks-java-io-expansion-service jar")
@click.option("--flush-seconds", type=SECONDS, default=None,
              help="a commit holds at least this many seconds of data (default 1.0) ...")
@click.option("--flush-rows", type=Int(min=1, example="5000"), default=None,
              help="... or this many rows per partition, whichever first (default 5000)")
@click.option("--optimize-every", type=SECONDS, default=None,
              help="compact and vacuum the lake in the background every N seconds (default 600; 0: off)")
@workers_option()
@shared_model_option()
@verbose_option()
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def stream(bootstrap, topics, lake, group, join_group, max_records, idle_exit, profile, registry, device,
           precision, max_message_bytes,
           bundle_records, bundle_seconds, catchup_records, metrics_port, metrics_host, source, expansion_service,
           expansion_jar,
           flush_seconds, flush_rows, optimize_every, workers, shared_model, verbose, beam_args) -> None:
    """Run the streaming pipeline. Arguments after `--` go to Beam (e.g. -- --runner=PortableRunner ...).

    --lake may be a directory or an object-store URL (s3://bucket/path?endpoint_override=...)."""
    from finpulse.pipeline.runtime.memory_env import apply_memory_env

    apply_memory_env()  # first: may re-execute this process once (bounded native memory, see memory_env)
    from finpulse.pipeline.jobs.stream import run_stream
    from finpulse.pipeline.sources.kafka_xlang import XlangConfig

    setup_logging(verbose)
    announce_new_lake(lake)
    registry = chosen_registry(registry, profile, device)
    overrides = {k: v for k, v in dict(topics=topics.split(",") if topics else None, lake=lake, group=group,
                 join_group=join_group,
                 max_records=max_records, idle_exit=idle_exit, registry=registry, device=device, precision=precision,
                 max_message_bytes=max_message_bytes, bundle_records=bundle_records, bundle_seconds=bundle_seconds,
                 catchup_records=catchup_records, metrics_port=metrics_port, metrics_host=metrics_host,
                 flush_seconds=flush_seconds,
                 flush_rows=flush_rows, optimize_every=optimize_every, shared_model=shared_model).items()
                 if v is not None}
    if max_records is not None and workers > 1:
        raise click.UsageError("--max-records counts records in each worker process, so with --workers > 1 "
                               "a run would not stop where you asked; use --idle-exit, or one worker")
    settings = validated(StreamSettings, **overrides)
    if bootstrap:
        settings.kafka.bootstrap = bootstrap
    run_stream(settings, worker_args(workers, beam_args), source, XlangConfig(expansion_service, expansion_jar))


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--input", "pattern", type=Glob(), required=True,
              help="glob of .jsonl/.csv/.parquet files (comma-separate several)")
@lake_option()
@registry_option()
@device_option()
@precision_option()
@click.option("--chunk", type=COUNT, default=2000, show_default=True, help="rows per committed chunk")
@click.option("--kind", "fallback_kind", type=click.Choice(["news", "social"]), default="news", show_default=True,
              help="kind for rows that do not say")
@metrics_options
@workers_option()
@shared_model_option()
@runner_options
@verbose_option()
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def backfill(pattern, lake, profile, registry, device, precision, chunk, fallback_kind, metrics_port, metrics_host,
             workers,
             shared_model, runner, dask_address, verbose, beam_args) -> None:
    """Enrich archived files into the lake; re-running skips what is already there.

    --lake may be a directory or an object-store URL; arguments after `--` go to Beam."""
    from finpulse.pipeline.jobs.backfill import run_backfill
    from finpulse.pipeline.runtime import metrics

    setup_logging(verbose)
    announce_new_lake(lake)
    if metrics_port is not None:  # readiness: the lake takes writes and a chunk committed in the last 10 minutes
        metrics.serve(metrics_port, metrics.Readiness(lake, None, stalled_after=600.0, needs_lag=False),
                      metrics_host or "127.0.0.1")
    check_runner(runner, dask_address, workers)
    result = run_backfill(pattern, lake, registry=chosen_registry(registry, profile, device), device=device, chunk=chunk,
                          precision=precision,
                          fallback_kind=fallback_kind, beam_args=worker_args(workers, beam_args),
                          shared_model=shared_model, dask_address=dask_address)
    click.echo(json.dumps(result))


@click.command()
@lake_option(existing=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--as-of", "as_of", type=AsOf(), default=None,
              help="the tables as they were: TABLE@VERSION (e.g. enriched@12: that table's version, the others "
                   "as they were at its commit) or an ISO time (every table)")
@click.option("--model-version", default=None,
              help="read this model version's rows (after a rescore) instead of the newest")
@click.argument("sql")
def query(lake, fmt, as_of, model_version, sql) -> None:
    """Run read-only SQL over the views enriched, deadletter and alerts (and enriched_versions:
    every model version's row of each id)."""
    import duckdb

    from finpulse.pipeline.lake.query import format_table, run_query

    require_lake(lake)
    try:
        table = run_query(lake, sql, as_of=as_of, model_version=model_version)
    except duckdb.Error as exc:
        raise click.ClickException(f"query failed: {exc}") from None
    if fmt == "json":
        for row in table.to_pylist():
            sys.stdout.write(json.dumps(row, default=str) + "\n")
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
    else:
        click.echo(format_table(table))


@click.command()
@lake_option(existing=True)
@registry_option()
@click.option("--since", type=IsoTime(), default=None, help="rescore posts published from this ISO time")
@click.option("--until", type=IsoTime(), default=None, help="... until this ISO time")
@device_option()
@precision_option()
@click.option("--chunk", type=COUNT, default=2000, show_default=True, help="rows per commit")
@workers_option()
@runner_options
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def rescore(lake, profile, registry, since, until, device, precision, chunk, workers, runner, dask_address,
            beam_args) -> None:
    """Re-enrich the lake's posts with another model version into the same table (old rows kept:
    see `query --as-of` / `--model-version`); arguments after `--` go to Beam."""
    from finpulse.pipeline.jobs.rescore import rescore as run_rescore
    from finpulse.pipeline.jobs.stream import resolve_device

    setup_logging(False)
    check_runner(runner, dask_address, workers)
    result = run_rescore(lake, chosen_registry(registry, profile, device), parse_time(since),
                         parse_time(until, "--until"), resolve_device(device), chunk,
                         precision=precision, beam_args=worker_args(workers, beam_args), dask_address=dask_address,
                         progress=True)
    click.echo(json.dumps(result))


@click.command()
@lake_option()
@click.option("--bucket", type=BucketWidth(), default="1 hour", show_default=True,
              help="bucket width: N second|minute|hour|day[s]")
@click.option("--keys", type=KEY_KINDS, default="company", show_default=True,
              help="comma-separated key kinds: company,ticker,topic,source,kind,all")
@click.option("--unit", type=click.Choice(["story", "post"]), default="story", show_default=True,
              help="count distinct near-duplicate stories (copies are buzz, not evidence) or every post")
@click.option("--since", type=IsoTime(), default=None,
              help="backtest from this ISO time (history before it feeds the baseline)")
@click.option("--until", type=IsoTime(), default=None, help="backtest until this ISO time")
@click.option("--follow", is_flag=True, help="keep evaluating every --interval seconds")
@click.option("--interval", type=Float(min=0, min_open=True, example="60"), default=60.0, show_default=True)
@click.option("--webhook", type=WebUrl(), default=None,
              help="POST each new alert as JSON to this URL (retries with backoff)")
@click.option("--kafka-topic", type=Topics(), default=None, help="publish each new alert as JSON to this topic")
@bootstrap_option(help="Kafka bootstrap for --kafka-topic")
@click.option("--min-volume", type=Int(min=1, example="12"), default=None,
              help="detector: minimum stories (--unit story, default 12) or posts (--unit post, default 20) in the window")
@click.option("--min-history", type=Int(min=0, example="30"), default=None,
              help="detector: no alert for a key until its baseline holds this many stories (posts with "
                   "--unit post); the cold-start guard, default 30")
@click.option("--alpha", type=Float(min=0, max=1, min_open=True, max_open=True, example="1e-4"), default=None,
              help="detector: binomial tail threshold")
@click.option("--routes", "routes_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TOML routes file: which alerts go to which apprise URLs (Slack, Teams, email, ...); "
                   "see docs/ALERTS.md")
@metrics_options
def alerts(lake, bucket, keys, unit, since, until, follow, interval, webhook, kafka_topic, bootstrap, min_volume,
           min_history, alpha, routes_file, metrics_port, metrics_host) -> None:
    """Evaluate negative-spike rules over the lake and record new alerts (never twice)."""
    import dataclasses
    import time

    from finpulse.pipeline.alerts.evaluate import run_alerts, summary
    from finpulse.pipeline.alerts.routes import load_routes
    from finpulse.pipeline.runtime import metrics
    from finpulse.pipeline.runtime.settings import AlertSettings, load_settings

    setup_logging(False)
    routes = load_routes(routes_file) if routes_file else None  # a bad file is a ConfigError: exit 2 with the reason
    if not follow:  # a follower may start before the first commit; a single evaluation needs a lake
        require_lake(lake)
    if metrics_port is not None:  # readiness: the lake takes writes and an evaluation ran recently
        readiness = metrics.Readiness(lake, None, stalled_after=max(60.0, 3 * interval), needs_lag=False)
        metrics.serve(metrics_port, readiness, metrics_host or "127.0.0.1")
    overrides = {k: v for k, v in {"min_volume": min_volume, "min_history_posts": min_history, "alpha": alpha}.items()
                 if v is not None}
    stories = {"min_stories": min_volume} if min_volume is not None else {}
    settings = AlertSettings(bucket=bucket, key_kinds=keys, unit=unit, **stories,
                             since=parse_time(since, "--since"), until=parse_time(until, "--until"),
                             detector=dataclasses.replace(load_settings().alerts.detector, **overrides))
    kafka = validated(KafkaSettings, **({"bootstrap": bootstrap} if bootstrap else {})).client_config() if kafka_topic else None
    while True:
        try:
            new = run_alerts(lake, settings, webhook, kafka, kafka_topic, routes=routes)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(summary(new))
        if not follow:
            return
        time.sleep(interval)
