"""Build the company gazetteer (`pipeline/enrich/reference/companies.csv`) from public reference lists.

    finpulse gazetteer build --data ../shared/data

Inputs (not shipped; see ../shared/data/README.md): `sec_company_tickers.csv` (SEC EDGAR, public
domain: every ticker with its CIK and registered name) and `sp500_constituents.csv` (PDDL: the
names people use), plus the curated `reference/overrides.csv` (brands, short names, renames such
as Facebook -> Meta, everyday words). The output is a derived work of those lists and is
committed as package data, so the installed package links companies without ../shared.

One row per company (SEC CIK). `key` is the company key every series and alert uses: the S&P
500 ticker if the company is a member, else its first SEC ticker (the SEC orders by size), so
GOOG and GOOGL, BRK.A and BRK.B, FB and META are one company. Aliases are derived from the
official names (case, punctuation, "The", corporate suffixes, share classes and state tags
removed) and marked by how much evidence a mention needs:

* `~alias`: an everyday word ("apple", "target", "visa"): links only with evidence (capitalised
  and a corporate suffix, the company's cashtag or financial words in the text);
* `^alias`: every word is an everyday word ("general motors") or the alias is short: links only
  when written with capitals;
* `=alias`: an index or market named like its operator ("Nasdaq", "Dow"): links only with a
  corporate suffix ("Nasdaq Inc") or as a cashtag;
* plain: links whenever the NER model tags it as an organisation.

Everyday words are measured, not guessed: words seen in lower case at least `COMMON_MIN` times
in the running text of the training corpora (tweets, topic tweets, CoNLL news). An alias two
companies derive alike goes to the S&P member, else the major-exchange listing; a tie drops it.
Tickers that are everyday words (ALL, NOW, ON) are marked `~` and never link as bare words.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

from finpulse.pipeline.enrich.companies import DEFAULT_GAZETTEER, OVERRIDES, normalize

COMMON_MIN = 3
_STATE_TAG = re.compile(r"\s*/[A-Z]{2,3}/?\s*$|\s*\\[A-Z]{2}\\?\s*$")  # "HUMANA INC /DE/"
_PARENS = re.compile(r"\s*\((?:the|class [a-z]|[^)]*shares?)\)\s*", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z'&-]*")
HEADER = (
    "# Derived from SEC EDGAR company_tickers_exchange (public domain) and the S&P 500 constituents list (PDDL) "
    "by pipeline/devtools/gazetteer.py with reference/overrides.csv; do not edit, edit the overrides and rebuild.\n"
)


def everyday_words(data: Path) -> set[str]:
    """Lower-case words of running text (not at a sentence start) seen >= COMMON_MIN times."""
    counts: Counter[str] = Counter()
    texts: list[str] = []
    for name in ("tfns_sentiment_train.csv", "tfn_topic_train.csv"):
        with open(data / name, encoding="utf-8", newline="") as fh:
            texts.extend(row["text"] for row in csv.DictReader(fh))
    sentence: list[str] = []
    for line in (data / "conll2003_train.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            sentence.append(line.split(" ")[0])
        else:
            texts.append(" ".join(sentence))
            sentence = []
    for text in texts:
        words = _WORD.findall(text)
        for w in words[1:]:
            if w.islower() and len(w) > 1:
                counts[w] += 1
    return {w for w, n in counts.items() if n >= COMMON_MIN}


def _read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file; lines starting with `#` are comments."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def clean_name(name: str) -> str:
    """'Coca-Cola Company (The)' -> 'Coca-Cola Company'; 'HUMANA INC /DE/' -> 'HUMANA INC'."""
    return _STATE_TAG.sub("", _PARENS.sub(" ", name)).strip(" ,")


def alias_forms(name: str) -> set[str]:
    """Normalised aliases of an official name: as is, with '&' spelled 'and', '.com' dropped, and
    each side of a ' - ' ("PETROBRAS - PETROLEO BRASILEIRO SA")."""
    base = clean_name(name)
    parts = [base, *(p for p in base.split(" - ") if " - " in base)]
    forms = set()
    for part in parts:
        forms |= {
            normalize(part),
            normalize(part.replace("&", " and ")),
            normalize(re.sub(r"(?i)\.?\bcom\b", "", part)),
        }
    return {f for f in forms if f and not f.isdigit()}


def first_word(alias: str, common: set[str]) -> str | None:
    """'marriott international' -> 'marriott': how news names a company, if the word is distinctive."""
    words = alias.split()
    if len(words) < 2 or len(words[0]) < 4 or words[0] in common or not words[0].isalpha():
        return None
    return words[0]


def build(data: Path, overrides: Path = OVERRIDES) -> list[dict]:
    common = everyday_words(data)
    companies: dict[str, dict] = {}
    sp500 = _read_csv(data / "sp500_constituents.csv")
    sec = _read_csv(data / "sec_company_tickers.csv")
    for row in sp500:
        cik = str(int(row["cik"]))
        c = companies.setdefault(
            cik,
            {
                "cik": cik,
                "key": row["ticker"],
                "name": clean_name(row["name"]),
                "tickers": [],
                "names": [],
                "sp500": True,
                "major": True,
            },
        )
        c["tickers"].append(row["ticker"])
        c["names"].append(row["name"])
    for row in sec:
        cik, ticker = str(int(row["cik"])), row["ticker"].replace("-", ".").upper()
        c = companies.setdefault(
            cik,
            {
                "cik": cik,
                "key": ticker,
                "name": row["name"],
                "tickers": [],
                "names": [],
                "sp500": False,
                "major": False,
            },
        )
        if ticker not in c["tickers"]:
            c["tickers"].append(ticker)
        c["names"].append(row["name"])
        c["major"] = c["major"] or row["exchange"] in ("NYSE", "Nasdaq")
    by_ticker = {t: c for c in companies.values() for t in c["tickers"]}

    # derived aliases, with the best claimant per alias (S&P member, then major exchange)
    # rank: full names before first words, then S&P member, then major exchange. An over-the-counter
    # listing gets no one-word alias ("MORGAN GROUP HOLDING CO" must not own "Morgan").
    # A tie goes to the company whose ticker is the alias ("UBS" the bank, not an ETN issuer).
    claims: dict[str, list[tuple[tuple[int, int, int, int], str]]] = defaultdict(list)
    for cik, c in companies.items():
        full = {a for n in c["names"] for a in alias_forms(n)}
        own = {t.lower() for t in c["tickers"]}
        for alias in full:
            if c["major"] or " " in alias:
                claims[alias].append(((1, int(c["sp500"]), int(c["major"]), int(alias in own)), cik))
        if c["major"]:
            for alias in {w for a in full if (w := first_word(a, common))} - full:
                claims[alias].append(((0, int(c["sp500"]), int(c["major"]), int(alias in own)), cik))
    aliases: dict[str, dict[str, str]] = defaultdict(dict)  # cik -> alias -> mark
    for alias, who in claims.items():
        who.sort(reverse=True)
        if len({cik for _, cik in who}) > 1 and who[0][0] == who[1][0]:
            continue  # two equally good owners: ambiguous, leave it to the overrides
        words = alias.split()
        if len(words) == 1 and alias in common:
            mark = "~"
        elif all(w in common for w in words) or len(alias.replace(" ", "")) <= 3:
            mark = "^"
        else:
            mark = ""
        aliases[who[0][1]][alias] = mark

    # curated overrides last: they win over anything derived
    rules = {"alias": "", "evidence": "~", "capitals": "^", "suffix": "="}
    for row in _read_csv(overrides):
        ticker, alias, rule = row["ticker"].strip().upper(), row["alias"].strip(), row["rule"].strip()
        if rule == "block":
            for table in aliases.values():
                table.pop(normalize(alias), None)
            continue
        owner = by_ticker.get(ticker)
        if owner is None:
            raise ValueError(f"{overrides}: ticker {ticker} is not in the SEC list")
        if rule == "ticker":  # an old or foreign ticker of the company (FB -> META)
            if alias.upper() not in owner["tickers"]:
                owner["tickers"].append(alias.upper())
            continue
        for table in aliases.values():
            table.pop(normalize(alias), None)
        aliases[owner["cik"]][normalize(alias)] = rules[rule]

    out = []
    for cik, c in companies.items():
        # a bare ticker ("AAPL" without $) links only for S&P members or when it is also a name
        # ("IBM", "KKR"): "SBI", "AGM", "CSR" in running text are acronyms far more often than tickers
        names = aliases[cik]
        tickers = [
            ("~" if t.lower() in common or not (c["sp500"] or t.lower() in names) else "") + t for t in c["tickers"]
        ]
        out.append(
            {
                "key": c["key"],
                "cik": cik,
                "name": c["name"],
                "sp500": int(c["sp500"]),
                "tickers": ";".join(tickers),
                "aliases": ";".join(mark + a for a, mark in sorted(aliases[cik].items())),
            }
        )
    return out


def write(rows: list[dict], path: Path = DEFAULT_GAZETTEER) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER)
        w = csv.DictWriter(fh, fieldnames=["key", "cik", "name", "sp500", "tickers", "aliases"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def rebuild(data: Path, out: Path = DEFAULT_GAZETTEER) -> dict:
    """Build from the lists in `data`, write `out`; what was written (companies, aliases, bytes)."""
    rows = build(data)
    write(rows, out)
    return {
        "companies": len(rows),
        "aliases": sum(len(r["aliases"].split(";")) for r in rows if r["aliases"]),
        "bytes": out.stat().st_size,
    }
