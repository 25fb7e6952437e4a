"""`finpulse dashboard` (the Streamlit app on a lake, bound to localhost unless told otherwise) and
`finpulse bench-dashboard`. Heavy imports stay inside the commands so the CLI starts fast."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import click

from finpulse.dashboard.serve import lake_env, streamlit_args
from finpulse.pipeline.cli.options import COUNT, Host, Port, lake_option


@click.command()
@lake_option(help="lake to show: a directory or an object-store URL")
@click.option("--port", type=Port(), default=8501, show_default=True)
@click.option("--host", type=Host(), default="127.0.0.1", show_default=True,
              help="interface to bind; the default serves this machine only (the page has no login)")
def dashboard(lake: str, port: int, host: str) -> None:
    """The analyst dashboard: trends, alerts, movers, topics, post explorer."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding to {host}: anyone who can reach this port can read the lake", err=True)
    click.echo(f"finpulse dashboard on http://{host}:{port}  (lake: {os.path.abspath(lake)})", err=True)
    # Streamlit runs in this process, so the lake can load while the server starts: the first
    # visitor of a large lake waits for what is left of the load, not for all of it.
    from streamlit.web import cli as streamlit_cli

    from finpulse.dashboard.store import open_store

    threading.Thread(target=lambda: open_store(lake).refresh(force=True), name="preload-lake", daemon=True).start()
    os.environ.update(lake_env(lake))  # Streamlit runs the app in this process: it reads the lake from settings
    sys.argv = streamlit_args(port, host)
    streamlit_cli.main()


@click.command(name="bench-dashboard")
@click.option("--rows", type=COUNT, default=1_000_000, show_default=True, help="enriched rows to generate")
@click.option("--lake", type=click.Path(path_type=Path, file_okay=False), default=Path("/tmp/finpulse-bench-lake"),
              show_default=True,
              help="generated once, reused when it exists")
@click.option("--no-browser", is_flag=True, help="skip the first-paint measurement in headless Chromium")
def bench_dashboard(rows: int, lake: Path, no_browser: bool) -> None:
    """Time every dashboard query on a generated lake of N rows; prints one JSON object."""
    import json

    from finpulse.dashboard.bench import run

    click.echo(json.dumps(run(lake, rows, browser=not no_browser), indent=2))
