"""`make demo` is one of the README's two commands: it must finish, show rows early, and show the alert."""

from __future__ import annotations

import re
import subprocess

import pytest
from support.processes import FINPULSE

from finpulse.pipeline.lake.query import run_query

pytestmark = pytest.mark.slow


def test_the_demo_shows_rows_early_and_alerts_on_the_injected_event(tmp_path):
    """The whole demo on its defaults (3,080 posts, an 80-post negative event on BA), no dashboard.

    It showed `(0 rows)` under alerts once stories were counted instead of posts: the generated
    feed holds too few distinct BA stories for the detector's cold-start floor, and nothing checked."""
    out = subprocess.run(FINPULSE + ["demo", "--lake", str(tmp_path / "lake"), "--dashboard-port", "0"],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    first_rows = r"\[demo\] first \d+ rows visible [\d.]+s after the stream started"
    assert re.search(first_rows, out.stdout), out.stdout[-3000:]
    alerts_section = out.stdout.split("== alerts", 1)[1]
    assert re.search(r"^\w+\s+BA\s", alerts_section, re.MULTILINE), alerts_section
    lake = tmp_path / "lake"
    counts = run_query(lake, "select count(*) n, count(distinct id) d from enriched").to_pylist()[0]
    assert counts == {"n": 3080, "d": 3080}
    assert run_query(lake, "select count(*) n from alerts where key = 'BA'").to_pylist()[0]["n"] == 1
