"""The floor plan holds: one sub-package per concern, no import cycles between them, and no
developer tooling on the runtime path (read from the source with `ast`, every import counted,
including the ones inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipeline"
RUNTIME_ENTRY_POINTS = ("finpulse.pipeline.jobs.stream", "finpulse.pipeline.jobs.backfill",
                        "finpulse.pipeline.alerts.evaluate", "finpulse.pipeline.lake.query")
PACKAGE_DIRS = {"finpulse.pipeline": "pipeline", "finpulse.models": "models", "finpulse.schemas": "schemas",
                "finpulse.dashboard": "dashboard", "finpulse.infra": "infra"}


def module_file(module: str) -> Path | None:
    for prefix, folder in PACKAGE_DIRS.items():
        if module == prefix or module.startswith(prefix + "."):
            rest = module[len(prefix):].lstrip(".").replace(".", "/")
            base = ROOT / folder / rest if rest else ROOT / folder
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
    return None


def imports_of(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("finpulse")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("finpulse"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
    return {m for m in out if module_file(m)}


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["finpulse", "pipeline"] else None


def test_pipeline_has_no_flat_modules_left():
    assert sorted(p.name for p in PIPELINE.glob("*.py")) == ["__init__.py", "messages.py"]
    for package in (p for p in PIPELINE.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        if package.name == "reference":
            continue
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc and len(doc) > 150, f"pipeline/{package.name}/__init__.py needs a docstring saying what lives there"


def test_no_import_cycles_between_pipeline_subpackages():
    edges: dict[str, set[str]] = {}
    for path in PIPELINE.rglob("*.py"):
        module = "finpulse.pipeline." + ".".join(path.relative_to(PIPELINE).with_suffix("").parts)
        src = subpackage(module)
        if src is None:
            continue
        for imported in imports_of(path):
            dst = subpackage(imported)
            if dst and dst != src:
                edges.setdefault(src, set()).add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    cycles = sorted(p for p in edges if reaches(p, p, {p}))
    assert cycles == [], f"sub-packages on an import cycle: {cycles}; edges: {edges}"


def test_devtools_and_cli_are_not_on_the_runtime_path():
    seen: set[str] = set()
    todo = list(RUNTIME_ENTRY_POINTS)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(module)
        if path is not None:
            todo.extend(imports_of(path))
    leaked = sorted(m for m in seen if subpackage(m) in ("devtools", "cli"))
    assert leaked == []
    assert "finpulse.pipeline.jobs.stream" in seen and len(seen) > 20  # the walk really followed imports


def test_only_the_cli_exits():
    offenders = []
    for path in [*PIPELINE.rglob("*.py"), *(ROOT / "models").rglob("*.py"), *(ROOT / "schemas").rglob("*.py")]:
        if "cli" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(call, ast.Name) and call.id == "SystemExit":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], "raise a FinpulseError (finpulse.schemas.errors) and let the CLI map it to an exit code"


def test_every_domain_error_derives_from_finpulse_error():
    from finpulse.models.artifacts.artifact import ModelLoadError
    from finpulse.models.artifacts.bases import BaseUnavailable
    from finpulse.models.data import DataFormatError
    from finpulse.pipeline.alerts.evaluate import AlertStoreError
    from finpulse.pipeline.lake.sql_guard import ReadOnlyViolation
    from finpulse.pipeline.runtime.beam_internals import BeamInternalsChanged
    from finpulse.schemas import errors

    found = [ModelLoadError, BaseUnavailable, DataFormatError, AlertStoreError, ReadOnlyViolation, BeamInternalsChanged]
    found += [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert all(issubclass(cls, errors.FinpulseError) for cls in found), [c for c in found if not issubclass(c, errors.FinpulseError)]
