"""Real labelled texts for tests, built from ../shared/data when a test first asks for them.

The shared data sets are read from where they live, never copied into the repository: the
labelled files the tests use (`linking_real.jsonl`, `headlines_real.jsonl`) are made by the
scripts in tests/fixtures/ (which hold only our own labels and selection rules) into a
temporary folder, once per test process.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@cache
def _out_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="finpulse-realdata-"))


@cache
def real_fixture(name: str) -> Path:
    """Path of tests' real-text file `name` (e.g. "linking_real.jsonl"), built from ../shared/data."""
    if not (DATA / "sentfin_entity_train.jsonl").is_file():
        raise FileNotFoundError(f"{DATA} is missing: the real-text tests read the shared data sets from there")
    script = FIXTURES / f"make_{name.removesuffix('.jsonl')}.py"
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = _out_dir() / name
    module.main(DATA, out)
    return out


def real_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in real_fixture(name).read_text(encoding="utf-8").splitlines() if line.strip()]
