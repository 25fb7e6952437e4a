"""Alert-test lakes and notices: a spiky lake, posts at a given hour, notices and routing files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from finpulse.pipeline.alerts.routes import (
    Notice,
)
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.schemas.records import EnrichedRecord

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)
W0 = T0 + timedelta(hours=30)  # the window of a notice (tests/pipeline/alerts/test_routing.py uses it too)


def post(i, hour, negative, ticker="AAPL"):
    sentiment = "negative" if negative else "neutral"
    return Row("enriched", EnrichedRecord(
        id=f"{ticker}-{i}", kind="news", source="s", published_at=T0 + timedelta(hours=hour, minutes=i % 60),
        ingested_at=T0, text="t", tickers=[ticker], sentiment=sentiment, sentiment_score=-0.9 if negative else 0.0,
        sentiment_probs={"negative": 0.9, "neutral": 0.1, "positive": 0.0}, topic="Markets", topic_score=0.5,
        entities=[], model_version="v").model_dump(), ticker, i, "2026-11-02")


def spiky_lake(tmp_path, spike=None):
    """AAPL: 30 posts an hour, 20% negative, then 70% negative in hour 30 (or {hour: negatives}); MSFT steady."""
    spike = spike or {30: 21}
    rows, i = [], 0
    for hour in range(36):
        for j in range(30):
            negative = j < spike.get(hour, 6)
            rows.append(post(i, hour, negative))
            rows.append(post(i + 100000, hour, j < 6, ticker="MSFT"))
            i += 1
    lake = Lake(tmp_path)
    lake.commit("AAPL", 0, i, [r for r in rows if r.source == "AAPL"])
    lake.commit("MSFT", 100000, 100000 + i, [r for r in rows if r.source == "MSFT"])
    return tmp_path



def notice(kind="alert", severity="high", key="AAPL", key_kind="ticker", alert_id="a-1", **kw) -> Notice:
    return Notice(
        notice_id=f"{kind}:{alert_id}",
        kind=kind,
        key_kind=key_kind,
        key=key,
        severity=severity,
        alert_id=alert_id,
        observed_share=0.5,
        baseline_share=0.2,
        volume=30,
        window_start=W0,
        window_end=W0 + timedelta(hours=1),
        **kw,
    )


def routes_file(tmp_path: Path, *routes: dict) -> Path:
    lines = ['dashboard_url = "http://127.0.0.1:8501"']
    for r in routes:
        lines.append("[[route]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in r.items()]
    f = tmp_path / "routes.toml"
    f.write_text("\n".join(lines) + "\n")
    return f

