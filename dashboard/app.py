"""The finpulse analyst dashboard (a Streamlit script; start it with `finpulse dashboard`).

Layout only: numbers come from `queries` (parameterised DuckDB over the in-memory `LakeStore`),
charts from `charts`, safe post rendering from `highlight`. The sidebar holds the filters; the
main area is a fragment that re-runs on its own every few seconds in live mode, so new rows
appear without reloading the page.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timezone

import duckdb
import pandas as pd
import streamlit as st

from finpulse.dashboard import charts, queries
from finpulse.dashboard.filters import PRESETS, Filters, preset_range
from finpulse.dashboard.highlight import highlight_html
from finpulse.dashboard.signal_view import signal_view
from finpulse.dashboard.store import LakeStatus, LakeStore, open_store
from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.storage import is_remote
from finpulse.pipeline.runtime.settings import DashboardSettings

VIEWS = ["Overview", "Trends", "Alerts", "Movers", "Topics", "Posts", "Models", "Signal"]
SENTIMENT_ICON = {"negative": "🔴", "neutral": "⚪", "positive": "🟢"}
PAGE_ROWS = 200


def lake_path() -> str:
    """The lake of the settings' dashboard section ($FINPULSE_LAKE; `finpulse dashboard --lake` sets it)."""
    return DashboardSettings().lake


def sidebar(store: LakeStore, status: LakeStatus) -> None:
    opts = queries.options(store) if status.posts else {"tickers": [], "topics": [], "sources": [], "kinds": []}
    sb = st.sidebar
    sb.toggle("Live (refresh every 5 s)", value=True, key="live")
    sb.selectbox("Time range", list(PRESETS) + ["Custom"], index=3, key="range",
                 help="Relative to the newest post in the lake, so archives open on their last days.")
    if st.session_state.get("range") == "Custom" and status.oldest and status.newest:
        sb.date_input("From / to", value=(status.oldest.date(), status.newest.date()),
                      min_value=status.oldest.date(), max_value=status.newest.date(), key="custom")
    sb.multiselect("Companies", opts["tickers"], key="tickers", placeholder="all companies")
    sb.multiselect("Topics", opts["topics"], key="topics", placeholder="all topics")
    sb.multiselect("Sources", opts["sources"], key="sources", placeholder="all sources")
    sb.multiselect("Kinds", opts["kinds"], key="kinds", placeholder="news and social")
    sb.multiselect("Sentiment", list(queries.SENTIMENTS), key="sentiments", placeholder="any sentiment")
    sb.text_input("Text contains", key="text", placeholder="e.g. recall, guidance, lawsuit", max_chars=200)
    sb.caption(f"Lake: `{store.root}`")


def current_filters(status: LakeStatus) -> Filters:
    state = st.session_state
    oldest, newest = status.oldest, status.newest
    choice = state.get("range", "Last 7 days")
    if choice == "Custom" and isinstance(state.get("custom"), (tuple, list)) and len(state["custom"]) == 2:
        day_from, day_to = state["custom"]
        start = datetime.combine(day_from, time.min, tzinfo=timezone.utc)
        end = datetime.combine(day_to, time.max, tzinfo=timezone.utc)
    else:
        if oldest is None or newest is None:  # main_area shows the views only once the lake has posts
            raise ValueError("a preset range needs a lake with posts (its oldest and newest are unknown)")
        start, end = preset_range(choice if choice in PRESETS else "Last 7 days", oldest, newest)
    return Filters(start=start, end=end, tickers=tuple(state.get("tickers") or ()), topics=tuple(state.get("topics") or ()),
                   sources=tuple(state.get("sources") or ()), kinds=tuple(state.get("kinds") or ()),
                   sentiments=tuple(state.get("sentiments") or ()), text=state.get("text") or "")


def header(status: LakeStatus) -> None:
    newest = f"{status.newest:%Y-%m-%d %H:%M:%S} UTC" if status.newest else "–"
    st.caption(f"Newest post **{newest}** · {status.posts:,} posts · {status.alerts:,} alerts · "
               f"{status.dead_letters:,} dead letters · refreshed {datetime.now(timezone.utc):%H:%M:%S} UTC")
    if status.skipped:
        st.warning(f"{len(status.skipped)} unreadable file(s) skipped (the rest of the lake is shown): "
                   + "; ".join(f"`{os.path.basename(k)}`: {v}" for k, v in list(status.skipped.items())[:3]))


def fmt_share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def overview(store: LakeStore, f: Filters) -> None:
    o = queries.overview(store, f)
    alerts = queries.alerts(store, f)
    c1, c2, c3, c4 = st.columns(4)
    posts, prev_posts = o["posts"] or 0, o["prev_posts"] or 0  # counts are never None, unlike shares and means
    c1.metric("Posts in range", f"{posts:,}",
              None if not prev_posts else f"{posts - prev_posts:+,} vs previous period")
    share_delta = (None if o["negative_share"] is None or o["prev_negative_share"] is None
                   else f"{(o['negative_share'] - o['prev_negative_share']) * 100:+.1f} pts")
    c2.metric("Negative share", fmt_share(o["negative_share"]), share_delta, delta_color="inverse")
    c3.metric("Mean sentiment", "–" if o["mean_score"] is None else f"{o['mean_score']:+.2f}",
              None if o["mean_score"] is None or o["prev_mean_score"] is None else f"{o['mean_score'] - o['prev_mean_score']:+.2f}")
    critical = int((alerts["severity"] == "critical").sum()) if not alerts.empty else 0
    c4.metric("Alerts in range", f"{len(alerts):,}", f"{critical} critical" if critical else None, delta_color="off")
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Most-mentioned companies")
        top = queries.top_companies(store, f)
        if top.empty:
            st.info("No company mentions in this selection.")
        else:
            st.dataframe(top, hide_index=True, width="stretch", column_config={
                "negative_share": st.column_config.ProgressColumn("negative share", format="percent", min_value=0, max_value=1),
                "mean_score": st.column_config.NumberColumn("mean sentiment", format="%+.2f")})
    with right:
        st.subheader("Latest alerts")
        if alerts.empty:
            st.success("No alerts in this range.")
        else:
            st.table(alert_rows(alerts.head(10)))
    trends(store, f, alerts)


def alert_rows(alerts: pd.DataFrame) -> pd.DataFrame:
    """Alerts as plain text columns (rendered as an HTML table, readable and searchable)."""
    return pd.DataFrame({
        "severity": alerts["severity"], "key": alerts["key_kind"] + ": " + alerts["key"],
        "window (UTC)": alerts["window_start"].dt.strftime("%Y-%m-%d %H:%M"),
        "negative share": [f"{o:.0%} vs {b:.0%}" for o, b in zip(alerts["observed_share"], alerts["baseline_share"], strict=False)],
        "posts": alerts["volume"]}).reset_index(drop=True)


def trends(store: LakeStore, f: Filters, alerts: pd.DataFrame | None = None) -> None:
    st.subheader(f"Sentiment trend · {f.bucket} buckets")
    volume = queries.trend(store, f)
    if volume.empty:
        st.info("No posts in this selection.")
        return
    alerts = queries.alerts(store, f) if alerts is None else alerts
    st.altair_chart(charts.trend_chart(volume, queries.mean_by_bucket(store, f), alerts), width="stretch")


def alerts_view(store: LakeStore, f: Filters) -> None:
    alerts = queries.alerts(store, f)
    st.subheader(f"Alerts ({len(alerts)})")
    if alerts.empty:
        st.success("No alerts in this range and selection.")
        return
    st.dataframe(alerts.drop(columns=["alert_id", "example_ids"]), hide_index=True, width="stretch", column_config={
        "observed_share": st.column_config.NumberColumn("observed", format="percent"),
        "baseline_share": st.column_config.NumberColumn("baseline", format="percent"),
        "ratio": st.column_config.NumberColumn(format="%.1f×"), "p_value": st.column_config.NumberColumn(format="%.1e")})
    labels = {row.alert_id: f"{row.severity} · {row.key_kind} {row.key} · {row.window_start:%Y-%m-%d %H:%M}"
              for row in alerts.itertuples()}
    chosen = st.selectbox("Show the posts behind", list(labels), format_func=lambda alert_id: labels[alert_id],
                          key="alert")
    alert = alerts.set_index("alert_id").loc[chosen]
    behind = queries.alert_posts(store, alert["key_kind"], alert["key"], alert["window_start"], alert["window_end"])
    st.markdown(f"**{alert['key']}**: {alert['negatives']} of {alert['volume']} negative "
                f"({alert['observed_share']:.0%} against a baseline of {alert['baseline_share']:.0%}, "
                f"p = {alert['p_value']:.1e}).")
    story_chains(store, behind)
    post_cards(behind)


def story_chains(store: LakeStore, behind: pd.DataFrame) -> None:
    """The distinct stories behind an alert, and one story's chain: first report, copies, sources, spread."""
    stories = queries.alert_stories(behind)
    if stories.empty:
        return
    st.caption(f"{len(stories)} distinct stories in {len(behind)} posts (copies add to buzz, not to evidence)")
    st.dataframe(stories.head(20), hide_index=True, width="stretch")
    chosen = st.selectbox("Story chain", list(stories["story"].head(20)), key="story")
    chain = queries.story_chain(store, chosen)
    summary = queries.chain_summary(chain)
    if summary:
        st.markdown(f"First report `{summary['first_id']}` from **{summary['first_source']}** at "
                    f"{summary['first_at']:%Y-%m-%d %H:%M}; {summary['copies']} copies from "
                    f"{summary['sources']} sources "
                    f"over {summary['spread_hours']} h.")
        st.dataframe(chain[["published_at", "source", "copies_seen", "id", "text"]], hide_index=True, width="stretch")


def post_cards(posts: pd.DataFrame, limit: int = 50) -> None:
    """Posts with sentiment, topic and highlighted entities, as escaped HTML."""
    cards = []
    for row in posts.head(limit).itertuples():
        meta = (f"{SENTIMENT_ICON.get(row.sentiment, '')} {row.sentiment} ({row.sentiment_score:+.2f}) · {row.topic} · "
                f"{row.kind}/{row.source} · {row.published_at:%Y-%m-%d %H:%M} · {' '.join(row.tickers)}")
        per_company = company_labels(getattr(row, "entity_sentiment", None))
        if per_company:
            meta += f" · per company: {per_company}"
        entities = list(row.entities) if row.entities is not None else []
        cards.append(f'<div class="fp-post" style="border-left:3px solid #ccc;padding:4px 10px;margin:6px 0">'
                     f'<div style="font-size:0.8em;color:#666">{_escape(meta)}</div>{highlight_html(row.text, entities)}</div>')
    if len(posts) > limit:
        cards.append(f"<p><em>{len(posts) - limit} more not shown.</em></p>")
    st.html("".join(cards) or "<p>No posts.</p>")


def company_labels(entity_sentiment) -> str:
    """'AAPL negative (-0.81), MSFT positive (+0.64)': each company's own label in a post card
    (empty for rows without per-company sentiment)."""
    if entity_sentiment is None:
        return ""
    items = list(entity_sentiment)
    return ", ".join(f"{e['ticker']} {e['sentiment']} ({e['score']:+.2f})" for e in items)


def _escape(text: str) -> str:
    return highlight_html(text, (), max_chars=500)


def chart_and_table(title: str, data: pd.DataFrame, empty: str, chart, column_config: dict | None = None) -> None:
    st.subheader(title)
    if data.empty:
        st.info(empty)
        return
    st.altair_chart(chart(data), width="stretch")
    st.dataframe(data, hide_index=True, width="stretch", column_config=column_config)


def movers_view(store: LakeStore, f: Filters) -> None:
    chart_and_table("Movers: last quarter of the range against the rest", queries.movers(store, f),
                    "Not enough posts per company in both parts of the range to compare (5 each).", charts.movers_chart)


def topics_view(store: LakeStore, f: Filters) -> None:
    chart_and_table("Sentiment by topic", queries.topics(store, f), "No posts in this selection.", charts.topic_chart,
                    {"negative_share": st.column_config.NumberColumn(format="percent"),
                     "mean_score": st.column_config.NumberColumn(format="%+.2f")})


def posts_view(store: LakeStore, f: Filters) -> None:
    total = queries.count_posts(store, f)
    st.subheader(f"Posts ({total:,})")
    st.download_button("Download selection as CSV", data=lambda: queries.export_csv(store, f),
                       file_name="finpulse-posts.csv", mime="text/csv", disabled=total == 0, on_click="ignore")
    page = queries.posts(store, f, limit=PAGE_ROWS)
    if page.empty:
        st.info("No posts match these filters.")
        return
    post_cards(page)


def models_view(store: LakeStore, f: Filters) -> None:
    """Two model versions over the same period (after `finpulse rescore`): where they agree."""
    st.subheader("Model versions compared")
    versions = queries.model_versions(store)
    if len(versions) < 2:
        st.info("Only one model version has scored this lake. Rescore a period with another registry "
                "(`finpulse rescore --lake DIR --registry R --since T --until T`) to compare them here.")
        return
    a = st.selectbox("Model A", versions, index=1)
    b = st.selectbox("Model B", versions, index=0)
    table = queries.compare_models(store, a, b, f)
    agree = int(table.loc[table.sentiment_a == table.sentiment_b, "posts"].sum()) if len(table) else 0
    total = int(table["posts"].sum()) if len(table) else 0
    st.metric("Same sentiment from both", f"{agree:,} of {total:,}")
    st.dataframe(table, hide_index=True)


RENDER = {"Overview": overview, "Trends": trends, "Alerts": alerts_view, "Movers": movers_view,
          "Topics": topics_view, "Posts": posts_view, "Models": models_view, "Signal": signal_view}


def main_area(store: LakeStore, had_posts: bool) -> None:
    """Everything below the view picker; re-run alone by the live timer."""
    if store.refresh() and not had_posts:
        st.rerun(scope="app")  # first rows arrived: the sidebar needs its options
    status = store.status()
    header(status)
    if not status.posts:
        if status.dead_letters:
            st.warning(f"The lake holds only dead letters ({status.dead_letters:,}): every record so far failed to "
                       "parse or enrich. Inspect them with `finpulse query --lake DIR \"select error, count(*) from "
                       "deadletter group by 1\"`.")
        else:
            st.info("The lake has no posts yet. Start `finpulse stream` or `finpulse backfill` with this lake; "
                    "the page fills in as rows are committed.")
        return
    f = current_filters(status)
    try:
        RENDER[st.session_state.get("view") or "Overview"](store, f)
    except duckdb.Error as exc:
        st.error(f"A query failed: {str(exc).splitlines()[0]}. Try a wider filter; if it persists, report it with this message.")


def apply_link(params, state) -> None:
    """Seed the filters once from a link (alert messages link here: ?ticker=AAPL&from=...&to=...)."""
    if state.get("_linked"):
        return
    state["_linked"] = True
    for param, key in (("ticker", "tickers"), ("topic", "topics"), ("source", "sources"), ("kind", "kinds")):
        if params.get(param):
            state[key] = [params[param]]
    try:
        if params.get("from") and params.get("to"):
            days = (date.fromisoformat(params["from"]), date.fromisoformat(params["to"]))
            state["range"], state["custom"] = "Custom", days
    except ValueError:
        pass  # a mangled link opens the default view


def main() -> None:
    st.set_page_config(page_title="finpulse", page_icon="📉", layout="wide")
    apply_link(st.query_params, st.session_state)
    path = lake_path()
    st.title("finpulse · financial opinion monitor")
    if not (tables.exists(path) if is_remote(path) else os.path.isdir(path)):
        st.error(f"The lake `{path}` does not exist. Start a stream or backfill that writes to it "
                 "(`finpulse stream --lake DIR`), or open another one with `finpulse dashboard --lake DIR`.")
        return
    store = open_store(path)
    store.refresh(force=True)
    status = store.status()
    sidebar(store, status)
    st.segmented_control("View", VIEWS, default="Overview", key="view", required=True, label_visibility="collapsed")
    live = bool(st.session_state.get("live"))
    st.fragment(main_area, run_every=5 if live else None)(store, bool(status.posts))


main()
