"""Cashtag extraction by rule: `$AAPL`, `$BRK.B` -> tickers; `$5`, `$1.2bn` are money, not tickers."""

from __future__ import annotations

import re
from collections.abc import Iterable

# 1-5 letters, optional class suffix (.A/.B); not preceded by a word char or another $.
CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,5}(?:\.[A-Za-z]{1,2})?)(?![\w])")


def extract_cashtags(text: str) -> list[str]:
    return [m.group(1).upper() for m in CASHTAG.finditer(text)]


def merge_tickers(*groups: Iterable[str]) -> list[str]:
    """Upper-case, strip a leading $, keep first-seen order, drop duplicates and blanks."""
    seen: dict[str, None] = {}
    for group in groups:
        for t in group:
            t = t.strip().lstrip("$").upper()
            if t:
                seen.setdefault(t, None)
    return list(seen)


def cashtag_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the cashtags ("$AAPL" whole), for per-company sentiment."""
    return [(m.start(), m.end()) for m in CASHTAG.finditer(text)]


def cashtag_ticker(mention: str) -> str | None:
    """The ticker of a mention that is exactly one cashtag, else None."""
    m = CASHTAG.fullmatch(mention.strip())
    return m.group(1).upper() if m else None
