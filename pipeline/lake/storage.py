"""Where a lake lives: a local directory, or an object-store URL (s3://, gs://) via pyarrow filesystems.

The tables themselves are Delta tables written by delta-rs (lake/tables.py). This module serves
what lives beside them, with primitives that map differently per backend:

* `put_atomic` (alert delivery ledgers, quarantine reasons, the migration marker): locally a tmp
  file + fsync + `os.replace`; on an object store one PUT (S3 never shows half an object).
* `publish`, a move (quarantining a corrupt file, moving a pre-Delta lake's files aside): locally
  `os.replace`; on an object store a server-side copy, then a delete: two steps, idempotent.
* `lock`, the single writer (one stream or alerts writer per lake): locally `flock` on a lock
  file; on an object store a lease object with a heartbeat (best effort, see `ObjectStorage.lock`).
* `list`, `read_text`, `remove`, `remove_tree` (the migration of pre-Delta lakes, tests): a
  directory walk, or a prefix listing (strongly consistent on S3 since 2020).

An object-store URL may carry pyarrow's options as query parameters, e.g.
`s3://bucket/lake?endpoint_override=http://127.0.0.1:9000&region=us-east-1` for MinIO or a test
server; credentials come from the usual AWS/GCP environment, never from the URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit

from finpulse.schemas.errors import LakeLocked

LEASE_TTL_S = 60.0  # an object-store lease not renewed for this long is considered abandoned


def is_remote(root: str | Path) -> bool:
    """True for object-store URLs (anything with a scheme other than file://)."""
    text = str(root)
    return "://" in text and not text.startswith("file://")


def open_storage(root: str | Path) -> LakeStorage:
    return ObjectStorage(str(root)) if is_remote(root) else LocalStorage(str(root).removeprefix("file://"))


class LakeStorage(ABC):
    """The lake's view of its storage: paths are '/'-separated and relative to the lake root."""

    root: str

    @abstractmethod
    def read_text(self, rel: str) -> str | None:
        """The object's text, or None if it does not exist."""

    @abstractmethod
    def put_atomic(self, rel: str, data: bytes) -> None:
        """Replace `rel` so that readers see the old or the new content, never a mix."""

    @abstractmethod
    def publish(self, staged: str, final: str) -> bool:
        """Move a staged file to its final place; False if it was already moved (idempotent)."""

    @abstractmethod
    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Relative paths of the files under `rel_dir` (recursive) ending in `suffix`."""

    @abstractmethod
    def remove(self, rel: str) -> None:
        """Delete one file if it exists."""

    @abstractmethod
    def remove_tree(self, rel_dir: str) -> None:
        """Delete a folder (prefix) and everything under it, if it exists."""

    @abstractmethod
    def lock(self, role: str):
        """Hold the single-writer lock for `role` until `.close()` of the returned handle."""


class LocalStorage(LakeStorage):
    """A directory on a POSIX file system: renames are atomic, fsync makes writes durable."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._root = Path(root)

    def _p(self, rel: str) -> Path:
        return self._root / rel

    def read_text(self, rel: str) -> str | None:
        try:
            return self._p(rel).read_text()
        except FileNotFoundError:
            return None

    def put_atomic(self, rel: str, data: bytes) -> None:
        final = self._p(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f"{final.name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)

    def publish(self, staged: str, final: str) -> bool:
        src, dst = self._p(staged), self._p(final)
        if not src.exists():
            return False
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        return True

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        base = self._p(rel_dir)
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self._root)) for p in base.rglob(f"*{suffix}") if p.is_file())

    def remove(self, rel: str) -> None:
        self._p(rel).unlink(missing_ok=True)

    def remove_tree(self, rel_dir: str) -> None:
        shutil.rmtree(self._p(rel_dir), ignore_errors=True)

    def lock(self, role: str):
        """flock: released by the OS when the process dies, so a crash never leaves a stale lock."""
        import fcntl

        self._root.mkdir(parents=True, exist_ok=True)
        path = self._root / f".{role}.lock"
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise LakeLocked(f"another finpulse {role} is already writing to {self.root}; stop it first "
                             f"(lock file {path})") from None
        return handle


def _split_url(url: str) -> tuple[str, str]:
    """'s3://bucket/lake?opts' -> ('s3://bucket?opts', 'bucket/lake'): a filesystem URI and a base path."""
    parts = urlsplit(url)
    base = f"{parts.netloc}{parts.path}".rstrip("/")
    fs_uri = f"{parts.scheme}://{parts.netloc}" + (f"?{parts.query}" if parts.query else "")
    return fs_uri, base


def object_filesystem(url: str):
    """(pyarrow FileSystem, base path) for an object-store lake URL."""
    from pyarrow import fs as pafs

    fs_uri, base = _split_url(url)
    filesystem, _ = pafs.FileSystem.from_uri(fs_uri)
    return filesystem, base


class ObjectStorage(LakeStorage):
    """S3 or GCS through pyarrow: single PUTs are atomic, there is no rename and no file lock."""

    def __init__(self, url: str) -> None:
        self.root = url
        self._fs, self._base = object_filesystem(url)

    @property
    def filesystem(self):
        """The pyarrow FileSystem (for readers such as pyarrow.dataset)."""
        return self._fs

    def full_path(self, rel: str) -> str:
        """`rel` as a path on `filesystem` (bucket/prefix/rel)."""
        return self._p(rel)

    def __getstate__(self) -> dict:  # filesystems are rebuilt from the URL in each worker
        return {"root": self.root}

    def __setstate__(self, state: dict) -> None:
        ObjectStorage.__init__(self, state["root"])

    def _p(self, rel: str) -> str:
        return f"{self._base}/{rel}" if rel else self._base

    def read_text(self, rel: str) -> str | None:
        try:
            with self._fs.open_input_stream(self._p(rel)) as fh:
                return fh.read().decode()
        except FileNotFoundError:
            return None

    def put_atomic(self, rel: str, data: bytes) -> None:
        with self._fs.open_output_stream(self._p(rel)) as out:
            out.write(data)

    def publish(self, staged: str, final: str) -> bool:
        """Copy, then delete: a crash between them leaves both, and the roll-forward copies again."""
        from pyarrow import fs as pafs

        if self._fs.get_file_info(self._p(staged)).type != pafs.FileType.File:
            return False
        self._fs.copy_file(self._p(staged), self._p(final))
        self._fs.delete_file(self._p(staged))
        return True

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        from pyarrow import fs as pafs

        selector = pafs.FileSelector(self._p(rel_dir), recursive=True, allow_not_found=True)
        prefix = self._base + "/"
        return sorted(i.path[len(prefix):] for i in self._fs.get_file_info(selector)
                      if i.type == pafs.FileType.File and i.path.endswith(suffix))

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.delete_file(self._p(rel))

    def remove_tree(self, rel_dir: str) -> None:
        for rel in self.list(rel_dir):
            self.remove(rel)

    def lock(self, role: str) -> Lease:
        """A lease object `.<role>.lease` renewed every TTL/4 by a daemon thread.

        Best effort, not a mutex: object stores have no flock, and pyarrow exposes no conditional
        PUT, so two writers starting within the same second could both take it. It does stop the
        common mistake (a second stream started against a lake that is being written); deployments
        must still run one writer job per lake (see docs/DEPLOY.md). A lease left by a crashed
        writer expires after LEASE_TTL_S.
        """
        return Lease(self, f".{role}.lease", role).acquire()


class Lease:
    """Owner-tagged lease object: taken if absent or stale, renewed in the background, deleted on close."""

    def __init__(self, storage: LakeStorage, rel: str, role: str, ttl: float = LEASE_TTL_S) -> None:
        self._storage, self._rel, self._role, self._ttl = storage, rel, role, ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        self._storage.put_atomic(self._rel, json.dumps({"owner": self.owner, "renewed": time.time()}).encode())

    def acquire(self) -> Lease:
        held = self._storage.read_text(self._rel)
        if held:
            state = json.loads(held)
            if state["owner"] != self.owner and time.time() - float(state["renewed"]) < self._ttl:
                raise LakeLocked(f"another finpulse {self._role} is already writing to {self._storage.root} "
                                 f"(lease {self._rel} held by {state['owner']}); stop it first, or wait "
                                 f"{self._ttl:.0f}s if it crashed")
        self._write()
        if json.loads(self._storage.read_text(self._rel) or "{}").get("owner") != self.owner:
            raise LakeLocked(f"another finpulse {self._role} took the lease on {self._storage.root} at the same time")
        self._thread = threading.Thread(target=self._renew, daemon=True, name=f"lease-{self._role}")
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self._ttl / 4):
            with contextlib.suppress(Exception):  # a missed renewal is retried; the TTL leaves room
                self._write()

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        held = self._storage.read_text(self._rel)
        if held and json.loads(held).get("owner") == self.owner:
            self._storage.remove(self._rel)
