"""The dashboard's "Signal" view: does the sentiment the lake holds mean anything for prices?

Three pictures of `finpulse signal`'s study (pipeline/market/study.py) over the selected range: the
event-study curve (mean cumulative abnormal return from 5 sessions before to 10 after the alerts,
with its 95% band), the information coefficient by horizon for each field as bars, and one
company's daily sentiment drawn over its price. The study reads the lake through DuckDB like
`finpulse signal` (the store's in-memory copy holds no prices), once per lake version and range.
"""

from __future__ import annotations

import functools
from datetime import datetime

import altair as alt
import pandas as pd
import streamlit as st

from finpulse.dashboard.filters import Filters
from finpulse.dashboard.store import LakeStore
from finpulse.pipeline.lake import tables

NO_PRICES = ("The lake holds no prices yet. Load daily closes with `finpulse prices load --lake DIR --file prices.csv` "
             "(columns ticker,date,close or adj_close; docs/ANALYTICS.md lists free sources), then come back.")


@functools.lru_cache(maxsize=16)
def _study(root: str, versions: tuple, start: datetime, end: datetime):
    """(panel, events, report, curve) of the range; `versions` (of the tables read) keys the cache."""
    from finpulse.pipeline.lake.query import connect
    from finpulse.pipeline.market.study import SignalSettings, curve, run_study

    con = connect(root)
    try:
        panel, events, report = run_study(con, SignalSettings(since=start, until=end))
        closes = con.sql("SELECT company, day, close FROM prices WHERE kind = 'company'").to_arrow_table().to_pandas()
    finally:
        con.close()
    return panel, events, report, curve(panel, events), closes


def car_chart(points: pd.DataFrame) -> alt.LayerChart | alt.FacetChart:
    """Mean CAR by session around the alerts, a 95% band, and the alert's session marked."""
    x = alt.X("day:Q", title="sessions from the alert (0: its session)", scale=alt.Scale(domain=[-5, 10]))
    band = alt.Chart(points).mark_area(opacity=0.2, color="#d62728").encode(
        x=x, y=alt.Y("lower:Q", title="mean cumulative abnormal return", axis=alt.Axis(format="%")), y2="upper:Q")
    line = alt.Chart(points).mark_line(point=True, color="#d62728").encode(
        x=x, y="mean:Q", tooltip=["day:Q", alt.Tooltip("mean:Q", format=".2%"), alt.Tooltip("lower:Q", format=".2%"),
                                  alt.Tooltip("upper:Q", format=".2%"), alt.Tooltip("n:Q", title="alerts")])
    zero = alt.Chart(pd.DataFrame({"day": [0]})).mark_rule(strokeDash=[4, 3], color="#888").encode(x="day:Q")
    return alt.layer(band, line, zero).properties(height=260)


def ic_chart(rows: pd.DataFrame) -> alt.Chart:
    """Mean daily IC per horizon, one bar per field side by side."""
    return alt.Chart(rows).mark_bar().encode(
        x=alt.X("horizon:N", title="horizon (sessions after the posts)", sort=None),
        xOffset="field:N", y=alt.Y("ic:Q", title="mean daily Spearman IC"),
        color=alt.Color("field:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=["horizon:N", "field:N", alt.Tooltip("ic:Q", format="+.4f"), alt.Tooltip("t:Q", format="+.2f"),
                 "days:Q"]).properties(height=260)


def company_chart(data: pd.DataFrame) -> alt.LayerChart | alt.FacetChart:
    """A company's close and its daily mean sentiment, each on its own axis."""
    x = alt.X("day:T", title=None)
    price = alt.Chart(data).mark_line(color="#444").encode(
        x=x, y=alt.Y("close:Q", title="close", scale=alt.Scale(zero=False)), tooltip=["day:T", "close:Q"])
    mood = alt.Chart(data.dropna(subset=["sentiment"])).mark_line(point=True, color="#1f77b4").encode(
        x=x, y=alt.Y("sentiment:Q", title="mean sentiment (stories)", scale=alt.Scale(domain=[-1, 1])),
        tooltip=["day:T", alt.Tooltip("sentiment:Q", format="+.2f"), "stories:Q"])
    return alt.layer(price, mood).resolve_scale(y="independent").properties(height=260)


def signal_view(store: LakeStore, f: Filters) -> None:
    from finpulse.pipeline.market.study import NoPrices

    root = str(store.root)
    versions = tuple(tables.snapshot(root, t).version for t in ("enriched", "alerts", "prices"))
    if versions[2] is None:
        st.info(NO_PRICES)
        return
    try:
        panel, events, report, points, closes = _study(root, versions, f.start, f.end)
    except NoPrices as exc:
        st.info(str(exc))
        return
    period = report["period"]
    st.subheader("Signal: sentiment against abnormal returns")
    st.caption(f"{period['sessions']} sessions ({period['first_session']} to {period['last_session']}), "
               f"{report['universe']['companies']} companies with prices; abnormal return = log return - "
               f"{report['universe']['market']}. {report['alignment'].capitalize()}.")
    left, right = st.columns(2)
    with left:
        st.markdown(f"**After {len(events)} alert{'' if len(events) == 1 else 's'}** (mean CAR, 95% band)")
        curve = pd.DataFrame(points).dropna(subset=["mean"])
        if curve.empty:
            st.info("No company alert in this range has prices around it.")
        else:
            st.altair_chart(car_chart(curve), width="stretch")
    with right:
        st.markdown("**Information coefficient by horizon**")
        rows = pd.DataFrame([{"horizon": h, "field": name, **v} for h, row in report["ic"].items()
                             for name, v in row["by_field"].items()]).dropna(subset=["ic"])
        if rows.empty:
            st.info("Too few companies with posts per session for an IC (5 needed).")
        else:
            st.altair_chart(ic_chart(rows), width="stretch")
    windows = [{"window": name, "alerts": w["alerts"]["mean"], "t": w["alerts"]["t"], "n": w["alerts"]["n"],
                "below -2%": w["alerts"]["share_below_-2%"], "all company-days": w["reference"]["mean"]}
               for name, w in report["alerts"].items() if name.startswith("car_")]
    st.dataframe(pd.DataFrame(windows), hide_index=True, width="stretch", column_config={
        "alerts": st.column_config.NumberColumn("mean CAR after alerts", format="percent"),
        "all company-days": st.column_config.NumberColumn("mean CAR, all company-days", format="percent"),
        "below -2%": st.column_config.NumberColumn(format="percent")})
    with_posts = [c for i, c in enumerate(panel.companies) if (panel.stories[i] > 0).any()]
    if not with_posts:
        return
    chosen = st.selectbox("Company", with_posts, key="signal_company",
                          index=with_posts.index(f.tickers[0]) if f.tickers and f.tickers[0] in with_posts else 0)
    i = panel.companies.index(chosen)
    scores = panel.field("score")[i]
    mood = pd.DataFrame({"day": pd.to_datetime(panel.calendar), "sentiment": scores, "stories": panel.stories[i]})
    price = closes[closes.company == chosen].assign(day=lambda d: pd.to_datetime(d["day"]))[["day", "close"]]
    st.altair_chart(company_chart(price.merge(mood, on="day", how="left")), width="stretch")
