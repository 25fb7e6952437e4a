"""Archive files (JSONL, CSV, Parquet) of generated posts for backfill tests."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq

from finpulse.pipeline.devtools.generator import generate_posts


def write_archives(folder):
    posts = list(generate_posts(150, seed=11))
    for i, p in enumerate(posts):
        p["id"] = f"arc-{i}"
    jsonl = folder / "a.jsonl"
    jsonl.write_text("".join(json.dumps(p) + "\n" for p in posts[:60]) + "{broken json\n")
    with open(folder / "b.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "text", "source", "published_at", "kind", "tickers"])
        w.writeheader()
        for p in posts[60:110]:
            w.writerow({"id": p["id"], "text": p["text"], "source": p["source"], "published_at": p["published_at"],
                        "kind": p["kind"], "tickers": ",".join(p.get("tickers", []))})
    pq.write_table(pa.Table.from_pylist([{k: p.get(k) for k in ("id", "text", "source", "published_at", "kind")}
                                         for p in posts[110:]]), folder / "c.parquet")
    return posts

