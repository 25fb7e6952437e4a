"""End to end in a real browser: `finpulse dashboard` on a backfilled lake, driven by headless Chromium."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
from lakefixtures import T0, post, write_posts
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from finpulse.dashboard.browser import chromium, dashboard_server
from finpulse.pipeline.lake.query import run_query

pytestmark = pytest.mark.slow  # drives the app on a lake backfilled through the real models


def shown_metric(driver, label: str) -> str | None:
    for m in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        if m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]').text.strip() == label:
            return m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text.strip()
    return None


def test_dashboard_in_chromium(enriched_lake, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(enriched_lake, lake)  # this test adds rows; the shared lake stays as it is
    ba_posts = run_query(enriched_lake, "select count(distinct id) n from enriched where list_contains(tickers, 'BA')").to_pylist()[0]["n"]
    all_posts = run_query(enriched_lake, "select count(distinct id) n from enriched").to_pylist()[0]["n"]
    ba_alerts = run_query(enriched_lake, "select severity from alerts where key = 'BA'").to_pylist()
    (ba_severity,) = [r["severity"] for r in ba_alerts]
    with dashboard_server(lake, tmp_path / "dashboard.log") as (url, pid), chromium() as driver:
        listening = {c.laddr.ip for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}, f"the dashboard must bind to localhost only by default, got {listening}"
        wait = WebDriverWait(driver, 60)
        started = time.monotonic()
        driver.get(url)
        # Charts rendered: Vega draws into a canvas (or svg) inside .vega-embed.
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".vega-embed canvas, .vega-embed svg"))
        print(f"first paint with chart: {time.monotonic() - started:.2f} s")
        assert shown_metric(driver, "Posts in range") == f"{all_posts:,}"

        # The alert row is on the page as text.
        table = wait.until(lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, '[data-testid="stTable"]')
                                      if "company: BA" in t.text])
        assert ba_severity in table[0].text

        # Pick BA in the Companies filter: the counts follow.
        box = next(w for w in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMultiSelect"]') if "Companies" in w.text)
        box.find_element(By.CSS_SELECTOR, "input").send_keys("BA")
        option = wait.until(lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, '[role="option"]') if o.text.strip() == "BA"])
        option[0].click()
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        wait.until(lambda d: shown_metric(d, "Posts in range") == f"{ba_posts:,}")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".vega-embed canvas, .vega-embed svg"))
        time.sleep(1.0)  # let the chart finish its transition before the picture
        shot = Path(os.environ.get("FINPULSE_SCREENSHOT", tmp_path / "dashboard.png"))
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000

        # Live: rows committed while the page is open appear without a page reload.
        driver.execute_script("window.finpulseMarker = 42")
        when = (datetime(2026, 11, 3, 12, tzinfo=timezone.utc) - T0).total_seconds() / 60
        write_posts(lake, [post(f"live-{i}", when + i, "negative", ("BA",)) for i in range(3)], name="live")
        WebDriverWait(driver, 30).until(lambda d: shown_metric(d, "Posts in range") == f"{ba_posts + 3:,}")
        assert driver.execute_script("return window.finpulseMarker") == 42, "the page was reloaded"
