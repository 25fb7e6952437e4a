"""How `finpulse dashboard` starts Streamlit on a lake (the command itself is in finpulse.pipeline.cli.dashboard)."""

from __future__ import annotations

import os
from pathlib import Path

from finpulse.pipeline.lake.storage import is_remote

APP = Path(__file__).with_name("app.py")


def lake_env(lake: str) -> dict[str, str]:
    """The environment the app reads its lake from (the settings' dashboard section: FINPULSE_LAKE)."""
    return {"FINPULSE_LAKE": lake if is_remote(lake) else os.path.abspath(lake)}


def streamlit_args(port: int, host: str) -> list[str]:
    """`streamlit run` arguments: no telemetry, no file watcher, no browser to open."""
    return ["streamlit", "run", str(APP),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal"]
