"""Real labelled texts for tests, built from the shared data sets when a test first asks for them.

The shared data sets are read from where they live, never copied into the repository: the
labelled files the tests use (`linking_real.jsonl`, `headlines_real.jsonl`) are made by the
scripts in tests/fixtures/ (which hold only our own labels and selection rules) into a
temporary folder, once per test process. Tests reach this through the `real_data` fixture
(tests/conftest.py), which finds the data sets and skips when they are missing.
"""

from __future__ import annotations

import importlib.util
import tempfile
from functools import cache
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@cache
def _out_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="finpulse-realdata-"))


@cache
def real_fixture(data: Path, name: str) -> Path:
    """Path of tests' real-text file `name` (e.g. "linking_real.jsonl"), built from the data sets in `data`."""
    script = FIXTURES / f"make_{name.removesuffix('.jsonl')}.py"
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = _out_dir() / name
    module.main(data, out)
    return out
