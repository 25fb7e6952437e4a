"""The Streamlit dashboard: trends, movers, alerts and the posts behind them, read through DuckDB.

- `app.py`: the Streamlit app (pages and widgets).
- `queries.py`: the SQL behind every view, over the lake's views.
- `store.py`: the lake connection a session shares.
- `charts.py`: Altair charts.
- `filters.py`: the sidebar's filters as data.
- `highlight.py`: marking companies in post text.
- `serve.py`: starting `streamlit run` for `finpulse dashboard`.
- `browser.py`: the headless-Chromium driver the browser test and screenshots use.
- `bench.py`: the dashboard's query bench on a generated lake.
- `signal_view.py`: the Signal view, sentiment against prices (`finpulse signal`'s study).

May import: `pipeline.lake`, `pipeline.market`, `pipeline.runtime`, `pipeline.devtools`, `schemas`.
"""
