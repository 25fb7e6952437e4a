"""Every question the dashboard asks, as one parameterised query each (no Streamlit here).

Each function takes the store and the analyst's `Filters` and returns a DataFrame, so the page
code only lays results out, and tests can check the numbers without a browser.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from finpulse.dashboard.filters import Filters, where
from finpulse.dashboard.store import LakeStore
from finpulse.pipeline.lake.query import company_rows

SENTIMENTS = ("negative", "neutral", "positive")
POST_COLUMNS = ("id, published_at, kind, source, tickers, sentiment, sentiment_score, topic, title, text, entities, "
                "url, story_id, copies_seen, entity_sentiment")


def options(store: LakeStore) -> dict[str, list[str]]:
    """Values the filter widgets offer, most frequent first."""
    out = {}
    for name, sql in (
        ("tickers", "SELECT t AS v, count(*) AS n FROM (SELECT unnest(tickers) AS t FROM posts) GROUP BY 1"),
        ("topics", "SELECT topic AS v, count(*) AS n FROM posts GROUP BY 1"),
        ("sources", "SELECT source AS v, count(*) AS n FROM posts GROUP BY 1"),
        ("kinds", "SELECT kind AS v, count(*) AS n FROM posts GROUP BY 1"),
    ):
        out[name] = store.query(f"{sql} ORDER BY n DESC, v")["v"].tolist()
    return out


def overview(store: LakeStore, f: Filters) -> dict[str, float | int | None]:
    """Posts, negative share and mean score in range, and the same for the period before it."""
    sql = """SELECT count(*) AS posts, count(*) FILTER (WHERE sentiment = 'negative') AS negatives,
                    avg(sentiment_score) AS mean_score FROM posts WHERE {}"""
    out: dict[str, float | int | None] = {}
    for prefix, flt in (("", f), ("prev_", f.previous())):
        clause, params = where(flt)
        row = store.query(sql.format(clause), params).iloc[0]
        posts = int(row["posts"])
        out[prefix + "posts"] = posts
        out[prefix + "negative_share"] = (int(row["negatives"]) / posts) if posts else None
        out[prefix + "mean_score"] = None if pd.isna(row["mean_score"]) else float(row["mean_score"])
    return out


def top_companies(store: LakeStore, f: Filters, limit: int = 10) -> pd.DataFrame:
    """Most-discussed companies with their own sentiment: per-company labels where the text mentions
    the company (mean score weighted by relevance), the post's where it does not."""
    clause, params = where(f)
    return store.query(f"""
        SELECT ticker, count(*) AS posts, count(DISTINCT story) AS stories,
               count(*) FILTER (WHERE sentiment = 'negative') / count(*) AS negative_share,
               sum(sentiment_score * relevance) / sum(relevance) AS mean_score
        FROM (SELECT *, coalesce(story_id, id) AS story FROM {company_rows(f"(SELECT * FROM posts WHERE {clause})")})
        {"WHERE ticker = ANY(?::VARCHAR[])" if f.tickers else ""}
        GROUP BY ticker ORDER BY posts DESC, ticker LIMIT {int(limit)}""",
        params + ([list(f.tickers)] if f.tickers else []))


def trend(store: LakeStore, f: Filters) -> pd.DataFrame:
    """Distinct stories per bucket and sentiment (the stacked bars), and the posts behind them.

    Copies of a story (retweets, syndication) add to `posts`, not to `volume`: the bars show how
    much independent reporting there was, as the alerts count it (docs/ALERTS.md, "Stories")."""
    clause, params = where(f)
    return store.query(f"""
        SELECT time_bucket(CAST(? AS INTERVAL), published_at) AS bucket, sentiment,
               count(DISTINCT coalesce(story_id, id)) AS volume, count(*) AS posts
        FROM posts WHERE {clause} GROUP BY ALL ORDER BY bucket, sentiment""", [f.bucket] + params)


def mean_by_bucket(store: LakeStore, f: Filters) -> pd.DataFrame:
    """Mean sentiment per bucket overall, or per selected company when a few are chosen."""
    clause, params = where(f)
    if f.tickers and len(f.tickers) <= 6:
        return store.query(f"""
            SELECT time_bucket(CAST(? AS INTERVAL), published_at) AS bucket, ticker AS series,
                   sum(sentiment_score * relevance) / sum(relevance) AS mean_score, count(*) AS volume
            FROM {company_rows(f"(SELECT * FROM posts WHERE {clause})")}
            WHERE ticker = ANY(?::VARCHAR[]) GROUP BY ALL ORDER BY bucket""",
            [f.bucket] + params + [list(f.tickers)])
    return store.query(f"""
        SELECT time_bucket(CAST(? AS INTERVAL), published_at) AS bucket, 'all selected' AS series,
               avg(sentiment_score) AS mean_score, count(*) AS volume
        FROM posts WHERE {clause} GROUP BY ALL ORDER BY bucket""", [f.bucket] + params)


def alerts(store: LakeStore, f: Filters) -> pd.DataFrame:
    """Alerts whose window overlaps the range, newest first; company filters apply to ticker alerts."""
    params: list = [f.end, f.start]
    extra = ""
    if f.tickers:
        extra = "AND (key_kind <> 'ticker' OR key = ANY(?::VARCHAR[]))"
        params.append(list(f.tickers))
    if f.topics:
        extra += " AND (key_kind <> 'topic' OR key = ANY(?::VARCHAR[]))"
        params.append(list(f.topics))
    return store.query(f"""
        SELECT alert_id, severity, key_kind, key, window_start, window_end, volume, negatives, stories, sources,
               posts, revision, observed_share, baseline_share, ratio, p_value, example_ids, created_at
        FROM alerts WHERE window_start < ? AND window_end > ? {extra}
        ORDER BY window_start DESC,
                 CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 ELSE 2 END, key""", params)


_KEY_MATCH = {
    "company": "list_contains(coalesce(companies, tickers), ?)",
    "ticker": "list_contains(tickers, ?)",
    "topic": "topic = ?",
    "source": "source = ?",
    "kind": "kind = ?",
    "all": "? = 'all'",
}


def alert_posts(store: LakeStore, key_kind: str, key: str, start: datetime, end: datetime,
                limit: int = 200) -> pd.DataFrame:
    """The posts behind an alert: its key in its window, most negative first."""
    match = _KEY_MATCH.get(key_kind)
    if match is None:
        raise ValueError(f"unknown alert key kind {key_kind!r}")
    return store.query(f"""
        SELECT {POST_COLUMNS} FROM posts
        WHERE {match} AND published_at >= ? AND published_at < ?
        ORDER BY sentiment_score, published_at LIMIT {int(limit)}""", [key, start, end])


def story_chain(store: LakeStore, story_id: str) -> pd.DataFrame:
    """A story's chain: its first report and every copy, in the order they were seen."""
    return store.query(f"""SELECT {POST_COLUMNS} FROM posts WHERE coalesce(story_id, id) = ?
                           ORDER BY coalesce(copies_seen, 1), published_at, id""", [story_id])


def chain_summary(chain: pd.DataFrame) -> dict:
    """First report, copies, sources and spread over time of a story chain (empty chain: {})."""
    if chain.empty:
        return {}
    first = chain.iloc[0]
    spread = chain["published_at"].max() - chain["published_at"].min()
    return {"first_id": first["id"], "first_source": first["source"], "first_at": first["published_at"],
            "copies": len(chain) - 1, "sources": int(chain["source"].nunique()),
            "spread_hours": round(spread.total_seconds() / 3600, 1),
            "per_source": chain.groupby("source").size().sort_values(ascending=False).to_dict()}


def alert_stories(behind: pd.DataFrame) -> pd.DataFrame:
    """The distinct stories among an alert's posts, most copied first."""
    if behind.empty:
        return pd.DataFrame(columns=["story", "posts", "sources", "first_seen"])
    df = behind.assign(story=behind["story_id"].fillna(behind["id"]))
    out = df.groupby("story").agg(posts=("id", "size"), sources=("source", "nunique"),
                                  first_seen=("published_at", "min"))
    return out.reset_index().sort_values(["posts", "first_seen"], ascending=[False, True])


def movers(store: LakeStore, f: Filters, min_posts: int = 5, limit: int = 10) -> pd.DataFrame:
    """Companies whose mean sentiment in the last quarter of the range moved most against the
    rest of the range (their own baseline). Needs `min_posts` in both parts. Per-company sentiment,
    relevance-weighted means (see top_companies)."""
    split = f.end - f.span / 4
    clause, params = where(f, tickers=False)
    return store.query(f"""
        WITH per AS (
            SELECT ticker, published_at >= ? AS recent, sentiment, sentiment_score, relevance
            FROM {company_rows(f"(SELECT * FROM posts WHERE {clause})")}
        ), agg AS (
            SELECT ticker,
                   count(*) FILTER (WHERE recent) AS recent_posts,
                   count(*) FILTER (WHERE NOT recent) AS baseline_posts,
                   sum(sentiment_score * relevance) FILTER (WHERE recent)
                     / sum(relevance) FILTER (WHERE recent) AS recent_score,
                   sum(sentiment_score * relevance) FILTER (WHERE NOT recent)
                     / sum(relevance) FILTER (WHERE NOT recent) AS baseline_score,
                   avg((sentiment = 'negative')::INT) FILTER (WHERE recent) AS recent_negative_share,
                   avg((sentiment = 'negative')::INT) FILTER (WHERE NOT recent) AS baseline_negative_share
            FROM per GROUP BY ticker
        )
        SELECT ticker, recent_posts, baseline_posts, recent_score, baseline_score,
               recent_score - baseline_score AS change, recent_negative_share, baseline_negative_share
        FROM agg WHERE recent_posts >= ? AND baseline_posts >= ?
        {"AND ticker = ANY(?::VARCHAR[])" if f.tickers else ""}
        ORDER BY abs(change) DESC, ticker LIMIT {int(limit)}""",
        [split] + params + [min_posts, min_posts] + ([list(f.tickers)] if f.tickers else []))


def topics(store: LakeStore, f: Filters) -> pd.DataFrame:
    clause, params = where(f)
    return store.query(f"""
        SELECT topic, count(*) AS posts,
               count(*) FILTER (WHERE sentiment = 'negative') AS negative,
               count(*) FILTER (WHERE sentiment = 'neutral') AS neutral,
               count(*) FILTER (WHERE sentiment = 'positive') AS positive,
               count(*) FILTER (WHERE sentiment = 'negative') / count(*) AS negative_share,
               avg(sentiment_score) AS mean_score
        FROM posts WHERE {clause} GROUP BY topic ORDER BY posts DESC, topic""", params)


def count_posts(store: LakeStore, f: Filters) -> int:
    clause, params = where(f)
    return int(store.query(f"SELECT count(*) AS n FROM posts WHERE {clause}", params).iloc[0, 0])


def posts(store: LakeStore, f: Filters, limit: int = 200, offset: int = 0) -> pd.DataFrame:
    """One page of the post explorer, newest first."""
    clause, params = where(f)
    return store.query(f"""SELECT {POST_COLUMNS} FROM posts WHERE {clause}
                           ORDER BY published_at DESC, id LIMIT {int(limit)} OFFSET {int(offset)}""", params)


def export_csv(store: LakeStore, f: Filters) -> bytes:
    """The whole current selection as CSV (entities as JSON text), built only when downloaded."""
    clause, params = where(f)
    df = store.query(f"""SELECT id, published_at, kind, source, array_to_string(tickers, ' ') AS tickers,
                                    sentiment, sentiment_score, topic, title, text, to_json(entities) AS entities,
                                    to_json(entity_sentiment) AS entity_sentiment, url
                             FROM posts WHERE {clause} ORDER BY published_at, id""", params, cache=False)
    return df.to_csv(index=False).encode("utf-8")


def model_versions(store: LakeStore) -> list[str]:
    """Model versions with rows in the lake, newest first (more than one after a `finpulse rescore`)."""
    from finpulse.pipeline.lake.query import run_query

    rows = run_query(store.root, "select model_version, max(ingested_at) t from enriched_versions "
                                 "group by 1 order by t desc")
    return [r["model_version"] for r in rows.to_pylist()]


def compare_models(store: LakeStore, a: str, b: str, f: Filters) -> pd.DataFrame:
    """Posts of the period scored by both model versions: how many got each (sentiment by a,
    sentiment by b) pair, with the mean score change. Read from the lake's table itself (every
    model's row of an id), not the store, which holds one row per id."""
    from finpulse.pipeline.lake.query import run_query

    table = run_query(store.root, """
        select x.sentiment as sentiment_a, y.sentiment as sentiment_b, count(*) as posts,
               avg(y.sentiment_score - x.sentiment_score) as mean_score_change
        from enriched_versions x join enriched_versions y using (id)
        where x.model_version = ? and y.model_version = ? and x.published_at >= ? and x.published_at < ?
        group by all order by 1, 2""", [a, b, f.start, f.end])
    return table.to_pandas()
