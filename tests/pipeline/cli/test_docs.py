"""The README's command reference and the CLI agree (sqlite-utils' tests/pipeline/cli/test_docs.py is the model):
every command the README lists exists and answers --help, and every command has a README row."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from finpulse.pipeline.cli import main

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()
REFERENCE = README[README.index("## Command reference"):README.index("\n## ", README.index("## Command reference") + 5)]
ROW = re.compile(r"^\| `finpulse ([a-z][a-z0-9-]*)(?: \{([a-z,-]+)\})?", re.MULTILINE)
DOCUMENTED = {m.group(1): set((m.group(2) or "").split(",")) - {""} for m in ROW.finditer(REFERENCE)}


def test_the_reference_table_was_found():
    assert len(DOCUMENTED) >= 15, DOCUMENTED


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_a_readme_row(name):
    assert name in DOCUMENTED, f"`finpulse {name}` has no row in README.md's command reference"


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_documented_command_exists_and_has_help(name):
    assert name in main.commands, f"README.md documents `finpulse {name}`, which does not exist"
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and main.commands[name].help.split("\n")[0][:30] in " ".join(result.output.split())


def test_group_subcommands_are_documented_and_exist():
    groups = {n: c for n, c in main.commands.items() if isinstance(c, click.Group)}
    assert groups, "expected at least one command group (chaos)"
    for name, group in groups.items():
        assert DOCUMENTED[name] == set(group.commands), (name, DOCUMENTED[name], set(group.commands))
        for sub in group.commands:
            result = CliRunner().invoke(main, [name, sub, "--help"])
            assert result.exit_code == 0, result.output
