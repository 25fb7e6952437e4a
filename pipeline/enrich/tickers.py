"""Cashtag extraction by rule: `$AAPL`, `$BRK.B` -> tickers; `$5`, `$1.2bn`, `L$D`, `A$AP` are not tickers.

A `$` inside a word is a stylised letter (rapper names "A$AP", song titles "L$D", "Ke$ha"), not a
cashtag: on real traffic, retweets of a rap song "L$D" became a critical alert on $D (Dominion
Energy). The previous rule already refused `L$D` written exactly so; it still took `L-$D`,
`L'$D` and lower-case `$d`. Now a cashtag must stand at a word start (not
after a letter, digit, `$`, or a letter plus hyphen/apostrophe), the text is NFKC-normalised
first (`＄` is `$`), and one- or two-letter cashtags must be written in capitals. `L $D` (with a
space) still reads as $D: no rule on the characters can tell it from a real cashtag; story
de-duplication is what keeps a retweet storm of it from alerting.
Reuters instrument codes of US listings (`<JNJ.N>`, `<META.O>`) are read as tickers too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# 1-5 letters, optional class suffix (.A/.B); not preceded by a word char, another $, or "X-"/"X'".
CASHTAG = re.compile(r"(?<![\w$])(?<![\w][-'’])\$([A-Za-z]{1,5}(?:\.[A-Za-z]{1,2})?)(?![\w$])")
RIC = re.compile(r"<([A-Z]{1,5}(?:_[a-z])?)\.(?:N|O|OQ|K|A)>")


def extract_cashtags(text: str) -> list[str]:
    """Tickers of the cashtags, in order. Most posts have no `$` once normalised, and the regex
    (it opens with look-behinds) tries every position before saying so: `in` says it sooner."""
    text = unicodedata.normalize("NFKC", text)
    if "$" not in text:
        return []
    out = []
    for m in CASHTAG.finditer(text):
        tag = m.group(1)
        if len(tag.split(".")[0]) <= 2 and not tag.isupper():
            continue
        out.append(tag.upper())
    return out


def extract_rics(text: str) -> list[str]:
    """US tickers from Reuters instrument codes (`<JNJ.N>` NYSE, `<META.O>` Nasdaq); `<SNR.L>` is not US."""
    return [m.group(1).split("_")[0] for m in RIC.finditer(text)]


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
    """Character spans of the cashtags ("$AAPL" whole), for per-company sentiment (no `$`, no regex)."""
    return [m.span() for m in CASHTAG.finditer(text)] if "$" in text else []


def cashtag_ticker(mention: str) -> str | None:
    """The ticker of a mention that is exactly one cashtag, else None."""
    m = CASHTAG.fullmatch(mention.strip())
    return m.group(1).upper() if m else None
