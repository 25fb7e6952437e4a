"""The company linking of commit 8b64d0a, kept below this note verbatim (but for where it finds the
CSV) as the reference that tests/pipeline/enrich/test_linking_identity.py holds the faster scan to: same spans, keys
and links on real text. Do not edit the code below; delete this file with the test when the
reference is no longer wanted.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from finpulse.schemas.errors import ConfigError

REFERENCE = Path(__file__).resolve().parents[2] / "pipeline" / "enrich" / "reference"  # the one edit
DEFAULT_GAZETTEER = REFERENCE / "companies.csv"
OVERRIDES = REFERENCE / "overrides.csv"

_SUFFIXES = (
    "incorporated",
    "inc",
    "corporation",
    "corp",
    "company",
    "companies",
    "co",
    "ltd",
    "limited",
    "plc",
    "llc",
    "lp",
    "l p",
    "holdings",
    "holding",
    "group",
    "sa",
    "ag",
    "nv",
    "n v",
    "se",
    "adr",
    "ads",
    "class a",
    "class b",
    "class c",
    "cl a",
    "cl b",
    "cl c",
    "the",
    "sab de cv",
    "de cv",
    "s a",
    "spa",
    "asa",
    "ab",
    "oyj",
    "bhd",
    "public",
    "aktiengesellschaft",
)
_TAIL = re.compile(r"(?:\s+(?:&|and))?\s+(?:" + "|".join(re.escape(s) for s in _SUFFIXES) + r")$")
# words that make a sentence about money: evidence that a capitalised everyday word is a company
FINANCIAL = re.compile(
    r"\b(?:shares?|stocks?|earnings|revenues?|profits?|sales|quarter(?:ly)?|Q[1-4]|fiscal|guidance|outlook|dividends?|"
    r"CEO|CFO|analysts?|investors?|upgrades?|downgrades?|price target|NYSE|Nasdaq|IPO|merger|acquisition|acquires?|"
    r"buyback|market cap|valuation|rall(?:y|ies|ied)|slump(?:s|ed)?|plunge[sd]?|surge[sd]?|tumble[sd]?|"
    r"layoffs?|lawsuit|recall|bln|billion|million|percent|stake|bonds?|rating|forecast|results|EPS|"
    r"chief executive)\b|%",
    re.IGNORECASE,
)


_POSSESSIVE = re.compile(r"'s\b|s'$")
_PUNCT = re.compile(r"[^\w&\s]")
_SPACES = re.compile(r"\s+")


def _basic(name: str) -> str:
    s = name.casefold().replace("’", "'").replace("‘", "'")
    s = _POSSESSIVE.sub("", s)
    s = _PUNCT.sub(" ", s)
    s = _SPACES.sub(" ", s).strip()
    return s[4:] if s.startswith("the ") else s


@lru_cache(maxsize=1 << 16)
def normalize(name: str) -> str:
    """'The Apple Inc.’s' -> 'apple'; '&' is kept ('AT&T', 'S&P'); punctuation and case are not.

    Memoised: the name scan looks up every capitalised run of up to four words, twice per post
    (spans for per-company sentiment, keys for the row), and the same runs recur across posts;
    this was most of the linking stage's 0.28 core-ms per post (finpulse bench, host_stages)."""
    s = _basic(name)
    while True:
        stripped = _TAIL.sub("", s).strip()
        if stripped == s or not stripped:
            return s
        s = stripped


@dataclass(frozen=True)
class Company:
    key: str
    cik: str
    name: str
    sp500: bool = False


@dataclass(frozen=True)
class Gazetteer:
    by_alias: dict[str, tuple[str, str]]  # normalised alias -> (company key, mark: "", "~" or "^")
    by_ticker: dict[str, str]  # every ticker, share class and old ticker -> company key
    word_tickers: frozenset[str]  # tickers that are everyday words (ALL, NOW): never linked as bare words
    companies: dict[str, Company]
    # the last texts' scan results: each post is scanned twice (its spans before the model, its
    # company keys when its row is built), a bundle apart at most
    scans: dict[str, list[tuple[int, str]]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tickers(self) -> frozenset[str]:
        return frozenset(self.by_ticker)

    def company_key(self, ticker: str) -> str:
        """The company key of a ticker ("FB" -> "META", "GOOG" -> "GOOGL"); unknown tickers are their own key."""
        t = ticker.strip().lstrip("$").upper().replace("-", ".")
        return self.by_ticker.get(t, t)

    def company_keys(self, tickers: Iterable[str]) -> list[str]:
        out: list[str] = []
        for t in tickers:
            k = self.company_key(t)
            if k and k not in out:
                out.append(k)
        return out

    def link(self, mention: str, text: str | None = None, start: int | None = None) -> str | None:
        """The company key a mention (an ORG span, a name, a ticker) refers to, or None.

        `text` and `start` place the mention in its post: with them, capitals at a sentence start
        are not evidence and financial words elsewhere in the text are. Without them the mention
        is taken as found capitalised inside running text."""
        raw = mention.strip()
        cashtag = raw.startswith("$")
        raw = raw.lstrip("$")
        if raw.replace(".", "").isalpha() and raw.isupper() and raw.replace("-", ".") in self.by_ticker:
            t = raw.replace("-", ".")
            if cashtag or (len(t) >= 2 and t not in self.word_tickers):
                return self.by_ticker[t]  # "AAPL", "BRK.B" written as a ticker
        key = normalize(raw)
        hit = self.by_alias.get(key)
        if hit is None:
            return None
        company, mark = hit
        if raw.islower() and text is not None and any(ch.isupper() for ch in text):
            return None  # a writer who uses capitals capitalises names: "prudential governance norms"
        if mark == "=":
            return company if _basic(raw) != key else None  # "Nasdaq Inc" yes, "the Nasdaq" no
        if mark == "":
            return company
        words = raw.split()
        capitalised = bool(words) and all(w[:1].isupper() or not w[:1].isalpha() for w in words)
        if mark == "^" or not capitalised:
            return company if capitalised else None
        # "~": an everyday word, capitalised. Look for evidence that it is the company.
        if _basic(raw) != key:
            return company  # "Target Corp", "Apple Inc."
        if text is None:
            return company
        if FINANCIAL.search(text) or f"${company}" in text.upper():
            return company
        at_sentence_start = start is None or not text[:start].strip() or text[:start].rstrip()[-1:] in ".!?:\"'\n"
        return None if at_sentence_start else company


_TOKEN = re.compile(r"[A-Za-z0-9][\w&'’.-]*[\w&]|[A-Za-z0-9]")
MAX_ALIAS_WORDS = 4


_FUNCTION_WORD_TEXT = (
    "a an the why how what when where who which is are was were will would can could should may might "
    "must does do did has have had after before as at in on for with from by and but or if while since "
    "until of to into over under about against between during without than this that these those it its "
    "our their his her my your "
)
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_TEXT.split())


def _capital_neighbour(text: str, tokens: list, j: int, edge: int) -> bool:
    """Whether token j is a capitalised word right next to `edge` (only spaces between)."""
    if not 0 <= j < len(tokens) or not tokens[j].group()[:1].isupper():
        return False
    if tokens[j].end() <= edge and tokens[j].group().casefold() in _FUNCTION_WORDS:
        return False  # "Why Marriott ...", "The Boeing ...": a capital on a function word says nothing
    gap = text[edge : tokens[j].start()] if tokens[j].start() >= edge else text[tokens[j].end() : edge]
    return gap.strip() == ""


def scan_text(text: str, gazetteer: Gazetteer) -> list[tuple[int, str]]:
    """(start, company key) of S&P 500 names found in the text itself, for what the NER model misses.

    Capitalised runs of up to MAX_ALIAS_WORDS tokens are looked up longest first (one dictionary
    probe per candidate, so the cost is per token, not per company) and pass the same evidence
    rules as NER mentions. Only S&P 500 members are scanned for, and a one-word name next to
    another capitalised word is skipped ("Henry Harteveldt" is a person, not Henry Schein;
    "Sunteck Realty" is not Realty Income): on the
    labelled set, scanning all 10,000 names found "India", "Monday" and "New York" as companies."""
    hit = gazetteer.scans.get(text)
    if hit is None:
        if len(gazetteer.scans) >= SCAN_MEMORY:
            gazetteer.scans.clear()
        hit = gazetteer.scans[text] = _scan(text, gazetteer)
    return list(hit)


SCAN_MEMORY = 8192  # texts; more than a bundle or a backfill chunk holds


def _scan(text: str, gazetteer: Gazetteer) -> list[tuple[int, str]]:
    tokens = list(_TOKEN.finditer(text))
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        if not tokens[i].group()[:1].isupper():
            i += 1
            continue
        for n in range(min(MAX_ALIAS_WORDS, len(tokens) - i), 0, -1):
            start, end = tokens[i].start(), tokens[i + n - 1].end()
            mention = text[start:end]
            hit = gazetteer.by_alias.get(normalize(mention))
            if hit is not None and gazetteer.companies[hit[0]].sp500:
                if n == 1 and (
                    _capital_neighbour(text, tokens, i + 1, end) or _capital_neighbour(text, tokens, i - 1, start)
                ):
                    continue  # "Henry Harteveldt"; "Morgan Stanley" was matched by its longer alias above
                key = gazetteer.link(mention, text, start)
                if key is not None:
                    found.append((start, key))
                    i += n
                    break
        else:
            i += 1
    return found


class GazetteerError(ConfigError, ValueError):
    """A gazetteer file (FINPULSE_COMPANIES) is malformed; the message names the file and line."""


def parse_gazetteer(lines: list[str], source: str = "gazetteer") -> Gazetteer:
    """Read the generated CSV (key,cik,name,tickers,aliases); `#` lines are comments."""
    by_alias: dict[str, tuple[str, str]] = {}
    by_ticker: dict[str, str] = {}
    word_tickers: set[str] = set()
    companies: dict[str, Company] = {}
    reader = csv.DictReader(line for line in lines if not line.startswith("#"))
    if reader.fieldnames is None or {"key", "tickers", "aliases"} - set(reader.fieldnames):
        raise GazetteerError(f"{source}: header must have key,cik,name,tickers,aliases")
    for lineno, row in enumerate(reader, start=2):
        key = (row.get("key") or "").strip().upper()
        if not key:
            raise GazetteerError(f"{source}:{lineno}: key is required")
        companies[key] = Company(
            key,
            (row.get("cik") or "").strip(),
            (row.get("name") or "").strip(),
            (row.get("sp500") or "").strip() == "1",
        )
        for t in [key, *(row.get("tickers") or "").split(";")]:
            t = t.strip()
            if t.startswith("~"):
                t = t[1:]
                word_tickers.add(t)
            if t:
                by_ticker.setdefault(t, key)
        for alias in (row.get("aliases") or "").split(";"):
            alias = alias.strip()
            mark = alias[:1] if alias[:1] in "~^=" else ""
            alias = alias[len(mark) :]
            if alias:
                by_alias.setdefault(alias, (key, mark))
    return Gazetteer(by_alias, by_ticker, frozenset(word_tickers), companies)


@lru_cache(maxsize=4)
def load_gazetteer(path: str | None = None) -> Gazetteer:
    path = path or os.environ.get("FINPULSE_COMPANIES") or str(DEFAULT_GAZETTEER)
    return parse_gazetteer(Path(path).read_text(encoding="utf-8").splitlines(), path)


def link_entities(entities, gazetteer: Gazetteer, text: str | None = None) -> list[str]:
    """Company keys of the ORG entities, in order of first mention (`text`: the post, for evidence)."""
    out: list[str] = []
    for e in entities:
        if e.type == "ORG":
            t = gazetteer.link(e.text, text, getattr(e, "start", None))
            if t and t not in out:
                out.append(t)
    return out


def company_mentions(
    text: str, entities, gazetteer: Gazetteer, given: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """(tickers, companies) of a post: the input's tickers, cashtags, Reuters codes and linked ORG
    entities, in first-mention order; `companies` maps them to company keys (FB -> META)."""
    from finpulse.pipeline.enrich.tickers import extract_cashtags, extract_rics, merge_tickers

    named = [key for _, key in sorted(scan_text(text, gazetteer))]
    tickers = merge_tickers(
        given, extract_cashtags(text), extract_rics(text), link_entities(entities, gazetteer, text), named
    )
    return tickers, gazetteer.company_keys(tickers)


def name_spans(text: str, gazetteer: Gazetteer) -> list[tuple[int, int]]:
    """Character spans of the company names `scan_text` finds in the text, for per-company sentiment
    (which scores each mention's own words). Additive: `scan_text` gives starts only; the end is the
    longest run of up to MAX_ALIAS_WORDS tokens from that start that names the same company."""
    tokens = list(_TOKEN.finditer(text))
    starts = {t.start(): n for n, t in enumerate(tokens)}
    spans = []
    for start, key in scan_text(text, gazetteer):
        i = starts.get(start)
        if i is None:
            continue
        for n in range(min(MAX_ALIAS_WORDS, len(tokens) - i), 0, -1):
            end = tokens[i + n - 1].end()
            hit = gazetteer.by_alias.get(normalize(text[start:end]))
            if hit is not None and hit[0] == key:
                spans.append((start, end))
                break
    return spans


# pipeline/enrich/tickers.py at 8b64d0a: the two cashtag readers, verbatim (the regex is the same object)
def extract_cashtags(text: str) -> list[str]:
    import unicodedata

    from finpulse.pipeline.enrich.tickers import CASHTAG

    out = []
    for m in CASHTAG.finditer(unicodedata.normalize("NFKC", text)):
        tag = m.group(1)
        if len(tag.split(".")[0]) <= 2 and not tag.isupper():
            continue
        out.append(tag.upper())
    return out


def cashtag_spans(text: str) -> list[tuple[int, int]]:
    from finpulse.pipeline.enrich.tickers import CASHTAG

    return [(m.start(), m.end()) for m in CASHTAG.finditer(text)]
