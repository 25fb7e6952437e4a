"""The floor plan holds: one sub-package per concern, no import cycles between them, and no
developer tooling on the runtime path (read from the source with `ast`, every import counted,
including the ones inside functions)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
    return imports_in(path.read_text())


def imports_in(source: str) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
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


# -- declared import rules and module lists -------------------------------------------------------
# Every sub-package's docstring ends with "May import: `a`, `b`." (or "everything"), names as seen from
# `finpulse.` (`pipeline.lake`, `models.engine`, `schemas`); `models.core` is the models' vocabulary,
# the modules at the top of models/. The rules live where a reader of the package looks first, and this
# test holds the code to them.

MODELS = ROOT / "models"
MODEL_CORE = {"tasks", "network", "spans", "data", "encoding"}


def unit_of(module: str) -> str | None:
    """The import-rule unit a finpulse module belongs to (`pipeline.lake`, `models.core`, `schemas`...)."""
    parts = module.split(".")[1:]
    if not parts:
        return None
    if parts[0] == "pipeline":
        return None if len(parts) < 2 else f"pipeline.{parts[1]}"
    if parts[0] == "models":
        if len(parts) >= 2 and (MODELS / parts[1]).is_dir():
            return f"models.{parts[1]}"
        return "models.core"
    return parts[0]


def rule_packages() -> dict[str, Path]:
    out = {f"pipeline.{p.name}": p for p in PIPELINE.iterdir() if (p / "__init__.py").is_file()}
    out |= {f"models.{p.name}": p for p in MODELS.iterdir() if (p / "__init__.py").is_file()}
    out["dashboard"] = ROOT / "dashboard"
    return out


def declared_imports(package: Path) -> set[str] | None:
    """The names on the `May import:` line of a package docstring; None means everything."""
    doc = " ".join((ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or "").split())
    assert "May import:" in doc, f"{package.relative_to(ROOT)}/__init__.py: say what it may import ('May import: ...')"
    tail = doc.split("May import:", 1)[1].lstrip()
    if tail.startswith("everything"):
        return None
    listed = re.match(r"((?:`[^`]+`(?:,\s*|\s+and\s+)?)+)", tail)
    assert listed, f"{package.relative_to(ROOT)}: 'May import:' must be followed by `names` or 'everything'"
    return set(re.findall(r"`([^`]+)`", listed.group(1)))


def rule_violations(extra: dict[Path, str] | None = None) -> list[str]:
    """Imports that break a package's declared rules; `extra` adds modules (path -> source) not on disk."""
    sources = {path: path.read_text() for package in rule_packages().values() for path in package.rglob("*.py")}
    sources |= extra or {}
    units = rule_packages()
    broken = []
    for path, text in sorted(sources.items()):
        unit = next(u for u, package in units.items() if package in path.parents)
        allowed = declared_imports(units[unit])
        if allowed is None:
            continue
        for imported in imports_in(text):
            dst = unit_of(imported)
            if dst is None or dst == unit or imported.startswith(f"finpulse.{unit}"):
                continue
            if dst in allowed or any(imported.startswith(f"finpulse.{a}") for a in allowed):
                continue
            broken.append(f"{path.relative_to(ROOT)} imports {imported} ({unit} may import {sorted(allowed)})")
    return broken


def test_each_package_imports_only_what_its_docstring_declares():
    assert rule_violations() == []


def test_the_rules_catch_a_forbidden_import():
    # The check above must be able to fail: a lake module that imports the models is caught. The module
    # exists only in memory (written into the tree, a parallel test could see it).
    rogue = PIPELINE / "lake" / "_rogue_for_test.py"
    found = rule_violations({rogue: "from finpulse.models.engine import inference\n"})
    assert any("_rogue_for_test.py imports finpulse.models.engine.inference" in f for f in found), found


def test_every_package_docstring_lists_its_modules():
    missing = []
    for unit, package in sorted(rule_packages().items()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        for module in sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__"):
            if f"`{module}.py`" not in doc and f"`{module}`" not in doc:
                missing.append(f"{unit}: {module}")
    top = ast.get_docstring(ast.parse((MODELS / "__init__.py").read_text())) or ""
    missing += [f"models: {m}" for m in sorted(p.stem for p in MODELS.glob("*.py") if p.stem != "__init__")
                if f"`{m}.py`" not in top]
    assert sorted(p.stem for p in MODELS.glob("*.py") if p.stem != "__init__") == sorted(MODEL_CORE), \
        "a new module at the top of models/ belongs in a sub-package (or in MODEL_CORE and the docstring)"
    assert missing == [], f"modules the package docstring does not name: {missing}"
