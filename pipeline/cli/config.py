"""`finpulse config show`: the effective settings and where each value came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


class Assignment(click.ParamType):
    """`section.field=value` (e.g. `alerts.detector.alpha=1e-4`): a flag-level setting for `config show`."""

    name = "SECTION.FIELD=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str, Any]:
        from finpulse.pipeline.runtime.settings import Settings

        key, sep, raw = str(value).partition("=")
        section, dot, rest = key.strip().partition(".")
        if not sep or not dot or not rest:
            self.fail(f"{value!r} is not SECTION.FIELD=VALUE, e.g. stream.lake=/data/lake or alerts.bucket='1 day'",
                      param, ctx)
        if section not in Settings.model_fields:
            self.fail(f"{value!r}: no section {section!r}; sections are {', '.join(Settings.model_fields)}", param, ctx)
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw
        return section, rest, parsed


@click.group(name="config")
def config_group() -> None:
    """The settings: one model with a section per concern (docs in the README, Configuration)."""


@config_group.command(name="show")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="a TOML settings file (default: $FINPULSE_CONFIG, else none)")
@click.option("--set", "assignments", type=Assignment(), multiple=True,
              help="a setting as a flag would give it, e.g. --set stream.lake=/data/lake (repeatable)")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def config_show(config_file: Path | None, assignments: tuple[tuple[str, str, Any], ...], fmt: str) -> None:
    """Print every setting's effective value and where it came from: flag, environment, file or default."""
    from finpulse.pipeline.runtime.settings import settings_with_sources

    flags: dict[str, dict[str, Any]] = {}
    for section, dotted, value in assignments:
        node = flags.setdefault(section, {})
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    rows = settings_with_sources(flags, config_file)
    if fmt == "json":
        click.echo(json.dumps({name: {"value": value, "source": source} for name, value, source in rows}, default=str))
        return
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        click.echo(f"{name:<{width}}  {value!s:<28}  {source}")
