"""Linking ORG entities to tickers through a gazetteer of company names and aliases. Pure.

The gazetteer is `pipeline/enrich/reference/companies.csv` (columns ticker,name,aliases with aliases
separated by `;`); edit it or point FINPULSE_COMPANIES at your own file of the same shape.

Matching is tolerant of case, punctuation, possessives and corporate suffixes ("Apple Inc.",
"Apple's", "APPLE" all give AAPL). Names that are also everyday words ("apple", "target",
"visa", ...) link only when the text capitalises them, so "apple pie" never becomes AAPL; the
NER model is uncased and cannot make that distinction itself.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_GAZETTEER = Path(__file__).resolve().parent / "reference" / "companies.csv"

# Aliases that are ordinary English words (or greetings, for "gm") need a capital letter.
COMMON_WORDS = frozenset({
    "apple", "target", "visa", "oracle", "progressive", "intuitive", "chase", "meta", "ford", "lam", "vertex",
    "booking", "southern", "amazon", "coke", "micron", "intel", "deere", "gm", "ti", "citi", "amex", "lilly",
    "goldman", "schwab", "linde", "kla", "c", "v", "t", "f", "ge", "ma", "ms", "so", "de", "ko", "pm", "now",
    "low", "cat", "ci", "cb", "mu", "ups", "snow", "elevance", "arista", "intuit", "target corp",
})
_SUFFIXES = ("incorporated", "inc", "corporation", "corp", "company", "co", "ltd", "limited", "plc", "llc",
             "holdings", "group", "sa", "ag", "nv", "class a", "class b", "cl a", "cl b")


def normalize(name: str) -> str:
    """'The Apple Inc.’s' -> 'apple'; '&' is kept ('AT&T', 'S&P'); punctuation and case are not."""
    s = name.casefold().replace("’", "'").replace("‘", "'")
    s = re.sub(r"'s\b|s'$", "", s)
    s = re.sub(r"[^\w&\s]", " ", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^the ", "", s)
    changed = True
    while changed:
        changed = False
        for suffix in _SUFFIXES:
            for tail in (f" & {suffix}", f" and {suffix}", f" {suffix}"):
                if s.endswith(tail) and len(s) > len(tail):
                    s = s[: -len(tail)].strip()
                    changed = True
    return s


@dataclass(frozen=True)
class Gazetteer:
    by_alias: dict[str, str]  # normalised alias -> ticker
    tickers: frozenset[str]

    def link(self, entity_text: str) -> str | None:
        """The ticker an ORG mention refers to, or None."""
        raw = entity_text.strip().lstrip("$")
        if raw.isupper() and raw.replace(".", "").isalpha() and raw in self.tickers and len(raw) >= 2:
            return raw  # "AAPL", "BRK.B" written as a ticker
        key = normalize(raw)
        ticker = self.by_alias.get(key)
        if ticker is None:
            return None
        if key in COMMON_WORDS and not raw[:1].isupper():
            return None  # "apple pie", "target practice", "gm everyone"
        if len(key) <= 2 and not raw.isupper():
            return None  # short names ("GE", "GM") only in capitals
        return ticker


def parse_gazetteer(lines: list[str], source: str = "gazetteer") -> Gazetteer:
    by_alias: dict[str, str] = {}
    tickers: set[str] = set()
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or {"ticker", "name"} - set(reader.fieldnames):
        raise ValueError(f"{source}: header must have ticker,name[,aliases]")
    for lineno, row in enumerate(reader, start=2):
        ticker = (row.get("ticker") or "").strip().upper()
        name = (row.get("name") or "").strip()
        if not ticker or not name:
            raise ValueError(f"{source}:{lineno}: ticker and name are required")
        tickers.add(ticker)
        for alias in [name, *(a for a in (row.get("aliases") or "").split(";") if a.strip())]:
            key = normalize(alias)
            if key and key not in by_alias:
                by_alias[key] = ticker
    return Gazetteer(by_alias, frozenset(tickers))


@lru_cache(maxsize=4)
def load_gazetteer(path: str | None = None) -> Gazetteer:
    path = path or os.environ.get("FINPULSE_COMPANIES") or str(DEFAULT_GAZETTEER)
    return parse_gazetteer(Path(path).read_text(encoding="utf-8").splitlines(), path)


def link_entities(entities, gazetteer: Gazetteer) -> list[str]:
    """Tickers of the ORG entities, in order of first mention."""
    out: list[str] = []
    for e in entities:
        if e.type == "ORG":
            t = gazetteer.link(e.text)
            if t and t not in out:
                out.append(t)
    return out


_PATTERNS: dict[int, tuple[Gazetteer, re.Pattern[str] | None]] = {}


def _name_pattern(gazetteer: Gazetteer) -> re.Pattern[str] | None:
    """One compiled alternation of the gazetteer's names, built once per gazetteer object."""
    cached = _PATTERNS.get(id(gazetteer))
    if cached is not None and cached[0] is gazetteer:
        return cached[1]
    if len(_PATTERNS) > 8:
        _PATTERNS.clear()
    _PATTERNS[id(gazetteer)] = (gazetteer, _compile_names(gazetteer))
    return _PATTERNS[id(gazetteer)][1]


def _compile_names(gazetteer: Gazetteer) -> re.Pattern[str] | None:
    keys = sorted((k for k in gazetteer.by_alias if len(k) > 2), key=len, reverse=True)  # longest first
    if not keys:
        return None
    parts = [r"[\W_]+".join(re.escape(w) for w in k.split(" ")) for k in keys]
    return re.compile(r"(?<![\w$])(?:" + "|".join(parts) + r")(?:'s|’s)?(?!\w)", re.IGNORECASE)


def name_spans(text: str, gazetteer: Gazetteer) -> list[tuple[int, int]]:
    """Character spans of gazetteer names written in the text that link to a ticker (the same case
    rules as `Gazetteer.link`), so per-company sentiment also covers companies the NER head missed.
    Additive helper for per-company sentiment; `link_entities` is unchanged."""
    pattern = _name_pattern(gazetteer)
    if pattern is None:
        return []
    return [(m.start(), m.end()) for m in pattern.finditer(text) if gazetteer.link(m.group(0))]
