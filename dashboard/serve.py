"""`finpulse dashboard`: start the Streamlit app on a lake, bound to localhost unless told otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

APP = Path(__file__).with_name("app.py")


def streamlit_command(lake: str, port: int, host: str) -> list[str]:
    """The `streamlit run` command line: no telemetry, no file watcher, no browser to open."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
            "--", "--lake", os.path.abspath(lake)]


@click.command()
@click.option("--lake", envvar="FINPULSE_LAKE", default="lake", show_default=True, help="lake directory to show")
@click.option("--port", type=int, default=8501, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="interface to bind; the default serves this machine only (the page has no login)")
def dashboard(lake: str, port: int, host: str) -> None:
    """The analyst dashboard: trends, alerts, movers, topics, post explorer."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding to {host}: anyone who can reach this port can read the lake", err=True)
    click.echo(f"finpulse dashboard on http://{host}:{port}  (lake: {os.path.abspath(lake)})", err=True)
    cmd = streamlit_command(lake, port, host)
    os.execv(cmd[0], cmd)
