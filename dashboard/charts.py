"""Altair chart specs for the dashboard (data in, chart out; no queries here)."""

from __future__ import annotations

import altair as alt
import pandas as pd

SENTIMENT_COLOURS = alt.Scale(domain=["negative", "neutral", "positive"], range=["#d62728", "#a0a0a0", "#2ca02c"])
SEVERITY_COLOURS = alt.Scale(domain=["medium", "high", "critical"], range=["#ff9f1c", "#e4572e", "#8b0000"])


def trend_chart(volume: pd.DataFrame, means: pd.DataFrame, alerts: pd.DataFrame) -> alt.VConcatChart:
    """Stacked volume per sentiment under a mean-sentiment line, alert windows marked on both."""
    x = alt.X("bucket:T", title=None)
    bars = alt.Chart(volume).mark_bar().encode(
        x=x, y=alt.Y("volume:Q", stack="zero", title="stories (copies counted once)"),
        color=alt.Color("sentiment:N", scale=SENTIMENT_COLOURS, legend=alt.Legend(orient="bottom")),
        order=alt.Order("sentiment:N"),
        tooltip=["bucket:T", "sentiment:N", alt.Tooltip("volume:Q", title="stories"), "posts:Q"])
    line = alt.Chart(means).mark_line(point=True).encode(
        x=x, y=alt.Y("mean_score:Q", title="mean sentiment", scale=alt.Scale(domain=[-1, 1])),
        color=alt.Color("series:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=["bucket:T", "series:N", alt.Tooltip("mean_score:Q", format=".2f"), "volume:Q"])
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(strokeDash=[2, 2], color="#888").encode(y="y:Q")
    top = line + zero
    bottom = bars
    if not alerts.empty:
        marks = alerts.assign(label=alerts["severity"] + " · " + alerts["key"])
        rules = alt.Chart(marks).mark_rect(opacity=0.18).encode(
            x="window_start:T", x2="window_end:T",
            color=alt.Color("severity:N", scale=SEVERITY_COLOURS, legend=alt.Legend(orient="bottom", title="alert")),
            tooltip=["label:N", "window_start:T", alt.Tooltip("observed_share:Q", format=".0%"),
                     alt.Tooltip("baseline_share:Q", format=".0%"), "volume:Q"])
        # Alert severity, sentiment and series each keep their own colour scale and legend.
        top = alt.layer(rules, top).resolve_scale(color="independent")
        bottom = alt.layer(rules, bottom).resolve_scale(color="independent")
    return alt.vconcat(top.properties(height=200), bottom.properties(height=180)).resolve_scale(color="independent")


def topic_chart(topics: pd.DataFrame) -> alt.Chart:
    """Posts per topic split by sentiment, topics ordered by volume."""
    long = topics.melt(id_vars=["topic", "posts"], value_vars=["negative", "neutral", "positive"],
                       var_name="sentiment", value_name="count")
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("topic:N", sort=alt.EncodingSortField("posts", order="descending"), title=None),
        x=alt.X("count:Q", stack="normalize", title="share of posts", axis=alt.Axis(format="%")),
        color=alt.Color("sentiment:N", scale=SENTIMENT_COLOURS, legend=alt.Legend(orient="bottom")),
        order=alt.Order("sentiment:N"),
        tooltip=["topic:N", "sentiment:N", "count:Q", "posts:Q"]).properties(height=max(120, 22 * len(topics)))


def movers_chart(movers: pd.DataFrame) -> alt.Chart:
    return alt.Chart(movers).mark_bar().encode(
        y=alt.Y("ticker:N", sort=alt.EncodingSortField("change", order="ascending"), title=None),
        x=alt.X("change:Q", title="change in mean sentiment vs baseline"),
        color=alt.condition("datum.change < 0", alt.value("#d62728"), alt.value("#2ca02c")),
        tooltip=["ticker:N", alt.Tooltip("recent_score:Q", format=".2f"), alt.Tooltip("baseline_score:Q", format=".2f"),
                 alt.Tooltip("change:Q", format="+.2f"), "recent_posts:Q", "baseline_posts:Q"],
    ).properties(height=max(120, 24 * len(movers)))
