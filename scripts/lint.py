"""`make lint`: ruff and mypy over the package, against a baseline that may only shrink.

The code base predates the checkers, so their findings are counted per (file, rule) and kept in
`lint-baseline.json`. A change that adds a finding to any file fails, naming it; a change that
removes findings passes and says so (`make lint-baseline` then records the smaller counts). New
files start at zero. Counting per file and rule, not per line, keeps the baseline stable when
lines move.

mypy needs the package as it is imported (`finpulse.pipeline` is the folder `pipeline/`), so the
script lays out `build/mypy/finpulse/` as links to the source folders and checks `-p finpulse`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "lint-baseline.json"
PACKAGES = ("pipeline", "models", "schemas", "dashboard", "infra")
MYPY_LINE = re.compile(r"^finpulse/(?P<file>[^:]+):\d+: error: .*\[(?P<code>[a-z0-9-]+)\]$")


def ruff_findings() -> Counter[str]:
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "json", "--exit-zero", "."],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return Counter(f"ruff {Path(f['filename']).resolve().relative_to(ROOT)} {f['code']}" for f in json.loads(out))


def mypy_findings() -> Counter[str]:
    tree = ROOT / "build" / "mypy" / "finpulse"
    tree.mkdir(parents=True, exist_ok=True)
    (tree / "__init__.py").touch()
    for name in PACKAGES:
        link = tree / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "finpulse"],
                          cwd=tree.parent, capture_output=True, text=True, env={"MYPYPATH": str(tree.parent), "PATH": ""})
    if proc.returncode not in (0, 1):
        raise SystemExit(f"mypy failed to run:\n{proc.stdout}{proc.stderr}")
    counts: Counter[str] = Counter()
    for line in proc.stdout.splitlines():
        m = MYPY_LINE.match(line)
        if m:
            counts[f"mypy {m['file']} {m['code']}"] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="write the current counts as the new baseline")
    args = parser.parse_args()
    now = ruff_findings() + mypy_findings()
    if args.update:
        BASELINE.write_text(json.dumps(dict(sorted(now.items())), indent=1) + "\n")
        print(f"lint baseline: {sum(now.values())} findings ({sum(v for k, v in now.items() if k.startswith('ruff'))} ruff, "
              f"{sum(v for k, v in now.items() if k.startswith('mypy'))} mypy) written to {BASELINE.name}")
        return 0
    base = Counter(json.loads(BASELINE.read_text())) if BASELINE.exists() else Counter()
    grew = {k: (base.get(k, 0), n) for k, n in now.items() if n > base.get(k, 0)}
    shrank = sum((base - now).values())
    print(f"lint: {sum(now.values())} findings against a baseline of {sum(base.values())}")
    if grew:
        print("new findings (fix them; `python -m ruff check FILE` / mypy show where):")
        for key, (was, n) in sorted(grew.items()):
            print(f"  {key}: {was} -> {n}")
        return 1
    if shrank:
        print(f"{shrank} fewer than the baseline: run `make lint-baseline` to record it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
