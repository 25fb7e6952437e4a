"""End to end in a real browser: `finpulse dashboard` on a backfilled lake, driven by headless Chromium."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from support.lakefixtures import T0, post, write_posts

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
    load_random_walk_prices(lake, tmp_path / "prices.csv")
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

        # Signal: the event-study curve around BA's alert, the IC bars and BA's sentiment over its price
        next(b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "Signal").click()
        wait.until(lambda d: "After 1 alert " in d.find_element(By.TAG_NAME, "body").text)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".vega-embed canvas, .vega-embed svg")) >= 3)


def load_random_walk_prices(lake: Path, csv: Path) -> None:
    """Closes of every company the lake's posts name, October and November 2026, through the loader."""
    import random

    from finpulse.pipeline.devtools.signal_choice import trading_days
    from finpulse.pipeline.enrich.companies import load_gazetteer
    from finpulse.pipeline.market.load import load_prices
    from finpulse.pipeline.market.prices import parse_prices, read_table

    keys = [r["k"] for r in run_query(lake, "select distinct unnest(coalesce(companies, tickers)) k from enriched "
                                            "order by 1").to_pylist()]
    rng, lines = random.Random(5), ["ticker,date,close"]
    for key in keys:
        close = 100.0
        for day in trading_days(datetime(2026, 10, 1).date(), 42):
            close *= 1 + rng.gauss(0, 0.01)
            lines.append(f"{key},{day},{close:.4f}")
    csv.write_text("\n".join(lines) + "\n")
    parsed = parse_prices(read_table(csv), load_gazetteer())
    assert parsed.table.num_rows > 0
    load_prices(lake, parsed)  # tickers the gazetteer does not know are left out (reported, not loaded)
