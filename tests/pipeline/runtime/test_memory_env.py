"""The stream's own native-memory settings (pipeline/runtime/memory_env.py): which variables it adds, and
that a real `finpulse stream` process runs with them."""

from __future__ import annotations

import os
import subprocess
import time

from support.processes import FINPULSE

from finpulse.infra.broker import free_port
from finpulse.pipeline.runtime import memory_env
from finpulse.pipeline.runtime.memory_env import MARKER, memory_env_to_add


def test_a_bare_environment_gets_both_variables_and_the_marker():
    assert memory_env_to_add({"PATH": "/bin"}) == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "MALLOC_ARENA_MAX": "2",
                                                   MARKER: "applied"}


def test_a_value_the_user_set_is_kept_and_only_the_other_is_added():
    assert memory_env_to_add({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"}) == {"MALLOC_ARENA_MAX": "2", MARKER: "applied"}
    assert memory_env_to_add({"MALLOC_ARENA_MAX": "8"}) == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", MARKER: "applied"}


def test_other_spellings_of_the_same_setting_count_as_set():
    env = {"DNNL_PRIMITIVE_CACHE_CAPACITY": "64", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4"}
    assert memory_env_to_add(env) == {}
    assert memory_env_to_add({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"})["MALLOC_ARENA_MAX"] == "2"


def test_nothing_is_added_once_applied_when_opted_out_or_when_everything_is_set():
    assert memory_env_to_add({MARKER: "applied"}) == {}  # the re-executed process: never a second exec
    assert memory_env_to_add({MARKER: "off"}) == {}
    assert memory_env_to_add({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "MALLOC_ARENA_MAX": "2"}) == {}


def test_inside_another_program_the_process_is_never_replaced(monkeypatch):
    """CliRunner runs `stream` inside pytest: an exec there would replace the test run."""
    for name in (MARKER, "ONEDNN_PRIMITIVE_CACHE_CAPACITY", "MALLOC_ARENA_MAX"):
        monkeypatch.delenv(name, raising=False)

    def no_exec(*args):
        raise AssertionError(f"exec called: {args}")

    monkeypatch.setattr(memory_env.os, "execve", no_exec)
    memory_env.apply_memory_env()


def _environ(pid: int) -> dict[str, str]:
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_a_real_stream_process_runs_with_the_variables(tmp_path):
    """The same pid (exec), started without MALLOC_ARENA_MAX and with a user's oneDNN value: its
    kernel-visible environment must hold the default for one and the user's value for the other."""
    env = {k: v for k, v in os.environ.items() if k not in (MARKER, "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "64"
    cmd = FINPULSE + ["stream", "--bootstrap", f"127.0.0.1:{free_port()}", "--topics", "t", "--lake", str(tmp_path / "lake")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        seen = _environ(proc.pid)
        while MARKER not in seen and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            seen = _environ(proc.pid)
        assert proc.poll() is None, "the stream exited instead of waiting for the (absent) broker"
        assert seen.get(MARKER) == "applied"
        assert seen.get("MALLOC_ARENA_MAX") == "2"
        assert seen.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY") == "64"
    finally:
        proc.kill()
        proc.wait()
