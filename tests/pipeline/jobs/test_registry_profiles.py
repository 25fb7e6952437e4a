"""The shipped "accurate" profile runs through the real stream: mpnet post and per-company sentiment,
one row per post."""

from __future__ import annotations

import pytest
from support.processes import StreamProcess, posts, send

from finpulse.pipeline.lake.query import run_query

pytestmark = pytest.mark.slow


def test_stream_with_the_accurate_profile_records_per_task_versions(broker, tmp_path):
    send(broker.bootstrap, "acc-news", posts(40, "acc", seed=21))
    lake = tmp_path / "lake"
    proc = StreamProcess(broker.bootstrap, ["acc-news"], lake, "--profile", "accurate", "--max-records", "40",
                         log=tmp_path / "run.log")
    assert proc.wait(300) == 0, proc.output()[-3000:]
    rows = run_query(lake, "select count(*) n, count(distinct id) d, min(model_version) v, "
                           "count(*) filter (where sentiment in ('negative', 'neutral', 'positive')) s from enriched")
    assert rows.to_pylist()[0] == {"n": 40, "d": 40, "s": 40, "v": "sentiment=finpulse-sentiment-mpnet-2026.11-a1,"
                                   "topic=finpulse-mt-2026.11-r2,ner=finpulse-mt-2026.11-r2,"
                                   "entity_sentiment=finpulse-mt-2026.11-r2,"
                                   "entity_target=finpulse-entity-target-mpnet-2026.12-a1"}
