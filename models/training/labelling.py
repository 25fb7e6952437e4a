"""Weak supervision: labelling functions for post sentiment, measured on labelled dev rows.

Why: the probes (models/evaluation/probes.py) show the fast profile missing things a rule states
exactly: "48 cents vs. 53 cents estimate" is a miss, "cuts full-year guidance" is bad news, "$X
shares fall 9%" is bad for $X. Rules like these label many unlabelled texts (the topic set, the
entity sets' texts, NER sentences) with high precision where they fire, and a head refit can learn
from them. Each labelling function (LF) returns a label index or ABSTAIN; `lf_table` measures each
on labelled rows (coverage: the share it fires on; precision: the share of its firings that agree
with the gold label), and `vote` combines them: the majority of the LFs that fired, abstaining on a tie.

The LFs are plain regular expressions over the text, small enough to read (Snorkel's label model
would weight them by estimated accuracy, but it pins old pandas/numpy; with a handful of precise
LFs a majority vote loses little). Labels are the sentiment task's: 0 negative, 1 neutral, 2 positive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ABSTAIN = -1
NEG, NEU, POS = 0, 1, 2

_NUM = r"\$?(\d+(?:\.\d+)?)\s*(cents?|c|[bBmM]|bn|billion|million)?"
_EST = r"(?:est\.?|estimates?|consensus|expected|exp\.?|forecast|street|fcst)"
# "48 cents ... vs. 53 cents estimate", "$0.58 vs $0.53 est", "revs $11.976B vs. $12.119B (est)"
_VS = re.compile(
    _NUM + r"[^.;\n]{0,25}?\b(?:vs\.?|versus|v\.|against)\s*(?:an?\s+|the\s+)?" + _NUM + r"[^.;\n]{0,15}?" + _EST,
    re.IGNORECASE,
)
_VS_EST_FIRST = re.compile(
    r"(?:"
    + _EST
    + r")\s*(?:of|was|were|at)?\s*"
    + _NUM
    + r"[^.;\n]{0,20}?\b(?:vs\.?|versus)\s*"
    + r"(?:actual\s*)?"
    + _NUM,
    re.IGNORECASE,
)
_BEATS_BY = re.compile(r"\b(beats?|tops?|misses|miss(?:ed)?)\s+(?:by\s+)?\$?\d", re.IGNORECASE)
_BEAT_WORDS = re.compile(
    r"\b(beats?|tops?|tops|surpass(?:es)?|exceeds?|crush(?:es)?|smash(?:es)?|ahead of)\b[^.;\n]{0,30}"
    r"\b(estimates?|expectations?|forecasts?|consensus|views?|street)\b",
    re.IGNORECASE,
)
_MISS_WORDS = re.compile(
    r"\b(miss(?:es|ed)?|falls? short of|below|lags?|trails?|shy of|disappoints?)\b[^.;\n]{0,30}"
    r"\b(estimates?|expectations?|forecasts?|consensus|views?|street)\b",
    re.IGNORECASE,
)
_GUIDE = r"(?:guidance|outlook|forecasts?|guide|projections?)"
_GUIDE_UP = re.compile(
    r"\b(rais(?:es|ed|ing)|lifts?|lifted|boosts?|boosted|hikes?|hiked|ups|increases?|increased)\b"
    r"[^.;\n]{0,30}\b" + _GUIDE + r"\b|\bguides?\s+(?:above|higher)",
    re.IGNORECASE,
)
_GUIDE_DOWN = re.compile(
    r"\b(cuts?|lowers?|lowered|slash(?:es|ed)?|trims?|trimmed|reduces?|reduced|withdraws?|"
    r"withdrew|pulls?|suspends?)\b[^.;\n]{0,30}\b" + _GUIDE + r"\b|\bguides?\s+(?:below|lower)|"
    r"\bno longer (?:expects|sees)\b|\bwarns? (?:on|of) (?:\w+ )?(?:profit|sales|earnings|revenue|results)\b",
    re.IGNORECASE,
)
# price moves with the company (a cashtag, a capitalised name, or "shares"/"stock") as the subject
# (not a macro figure: "Inflation rose 2%" says nothing about a company)
_MACRO = (r"(?!(?:Inflation|GDP|Unemployment|Jobless|Prices|Rates|Yields|Exports|Imports|Wages|Output|Spending|"
          r"Deficit|Debt)\b)")
_SUBJ = r"(?:\$[A-Za-z]{1,6}|\b" + _MACRO + r"[A-Z][\w&.'-]*(?:\s+[A-Z][\w&.'-]*){0,3}|\bshares|\bstock)"
_UP = (
    r"(?:rises?|rose|jumps?|jumped|surges?|surged|soars?|soared|climbs?|climbed|rall(?:y|ies|ied)|gains?|gained|"
    r"spikes?|spiked|pops?|popped|rockets?|skyrockets?|advances?|higher|up)"
)
_DOWN = (
    r"(?:falls?|fell|drops?|dropped|slides?|slid|sinks?|sank|tumbles?|tumbled|plunges?|plunged|slumps?|slumped|"
    r"dives?|dived|crater(?:s|ed)?|tanks?|tanked|plummets?|plummeted|declines?|declined|lower|down|slips?|slipped)"
)
_MOVE_UP = re.compile(_SUBJ + r"(?:\s+(?:shares|stock))?\s+" + _UP + r"\b[^.;\n]{0,20}?\d+(?:\.\d+)?\s?%")
_MOVE_DOWN = re.compile(_SUBJ + r"(?:\s+(?:shares|stock))?\s+" + _DOWN + r"\b[^.;\n]{0,20}?\d+(?:\.\d+)?\s?%")
_SIGNED_PCT_UP = re.compile(r"(?:^|\s)\+\d+(?:\.\d+)?%")
_SIGNED_PCT_DOWN = re.compile(r"(?:^|\s)[-\u2212]\d+(?:\.\d+)?%")
_DAY_BAD = re.compile(
    r"\bworst (?:day|week|month|quarter|year|session|start)\b|\b(?:52-week|all-time|record|multi-year) lows?\b",
    re.IGNORECASE,
)
_DAY_GOOD = re.compile(
    r"\bbest (?:day|week|month|quarter|year|session|start)\b|\b(?:52-week|all-time|record) highs?\b", re.IGNORECASE
)
_UPGRADE = re.compile(
    r"\bupgrade[sd]?\b|\b(?:raised|upped) to (?:buy|outperform|overweight|strong buy)\b|"
    r"\b(?:raises|lifts|boosts|hikes|ups) (?:\w+ )?(?:price )?target\b|\bPT raised\b",
    re.IGNORECASE,
)
_DOWNGRADE = re.compile(
    r"\bdowngrade[sd]?\b|\b(?:cut|lowered) to (?:sell|underperform|underweight|neutral|hold)\b|"
    r"\b(?:cuts|lowers|slashes|trims) (?:\w+ )?(?:price )?target\b|\bPT (?:cut|lowered)\b",
    re.IGNORECASE,
)
_ADVERSE = re.compile(
    _SUBJ + r"(?:\s+(?:shares|stock))?\s+(?:to\s+|will\s+)?(?:lays? off|laying off|cuts? [\d,]+ jobs|"
    r"(?:to )?cut [\d,]+ jobs|recalls?|recalling|(?:is |was )?sued|(?:is |was )?fined|hit with|faces|facing|"
    r"files? for (?:chapter 11|bankruptcy)|(?:is )?under (?:federal )?investigation|charged|misses debt)\b|"
    r"\b(?:sues|fines|charges|probes|investigates)\s+" + _SUBJ + r"|\blayoffs at\b"
)
_RESOLVED = re.compile(
    r"\bsettles?\b|\bprevails?\b|\bdismiss|\bnot guilty\b|\b(?:ends|drops|closes|resolves?)\b", re.IGNORECASE
)
_SCHEDULE = re.compile(
    r"\bto (?:report|announce|release|present|host|hold|webcast)\b|\bearnings preview\b|"
    r"\bdeclares? (?:a )?(?:quarterly |monthly |regular )?(?:cash )?dividend\b|\bconference call\b|"
    r"\bwhat to (?:watch|expect)\b|\bearnings (?:call )?transcript\b|\bto present at\b",
    re.IGNORECASE,
)
_BULL_SLANG = re.compile(
    r"to the moon|🚀|\bcalls? (?:are )?printing\b|\bmooning\b|\bripping\b|\bsqueez(?:e|ing)\b|"
    r"\bLFG\b|\bbullish\b",
    re.IGNORECASE,
)
_BEAR_SLANG = re.compile(
    r"\bputs? (?:are )?printing\b|\bbag ?holders?\b|\brug ?pull\b|\bdumping\b|\btanking\b|"
    r"\bfalling knife\b|\bbearish\b",
    re.IGNORECASE,
)
_NEGATED = re.compile(
    r"\bnot as bad as (?:feared|expected)\b|\bbetter than (?:feared|expected)\b|"
    r"\bnarrower than expected\b|\bless than (?:feared|expected)\b",
    re.IGNORECASE,
)


def _scale(v: str, unit: str | None) -> float:
    x = float(v)
    u = (unit or "").lower()
    if u in ("b", "bn", "billion"):
        return x * 1e9
    if u in ("m", "million"):
        return x * 1e6
    if u in ("c", "cent", "cents"):
        return x / 100
    return x


def _compare(actual: float, est: float) -> int:
    if actual == est:
        return ABSTAIN
    return POS if actual > est else NEG


def numbers_vs_estimate(text: str) -> int:
    """An actual figure against the estimate: above is a beat, below a miss (EPS, revenue)."""
    m = _VS.search(text)
    if m:
        a_unit, e_unit = m.group(2), m.group(4)
        if bool(a_unit) != bool(e_unit):  # "48 cents vs. $0.53": read both in the unit given
            a_unit = a_unit or e_unit
            e_unit = e_unit or a_unit
        return _compare(_scale(m.group(1), a_unit), _scale(m.group(3), e_unit))
    m = _VS_EST_FIRST.search(text)
    if m:
        return _compare(_scale(m.group(3), m.group(4) or m.group(2)), _scale(m.group(1), m.group(2) or m.group(4)))
    return ABSTAIN


def beats_misses_by(text: str) -> int:
    """ "X beats by $0.05", "misses by $0.02" (TFN's earnings headlines)."""
    found = {m.group(1).lower().startswith("miss") for m in _BEATS_BY.finditer(text)}
    found |= {True} if re.search(r"\bmiss(?:es|ed)? on\b", text, re.IGNORECASE) else set()
    found |= {False} if re.search(r"\bbeats? on\b", text, re.IGNORECASE) else set()
    if not found or not _BEATS_BY.search(text):
        return ABSTAIN
    return NEU if len(found) == 2 else (NEG if found == {True} else POS)  # "beats by $0.04, misses on revenue": mixed


def beat_miss_words(text: str) -> int:
    beat, miss = _BEAT_WORDS.search(text), _MISS_WORDS.search(text)
    if bool(beat) == bool(miss):
        return ABSTAIN
    return POS if beat else NEG


def guidance_direction(text: str) -> int:
    up, down = _GUIDE_UP.search(text), _GUIDE_DOWN.search(text)
    if bool(up) == bool(down):
        return ABSTAIN
    return POS if up else NEG


def price_move(text: str) -> int:
    """A price-move verb with a percentage, the company (or its shares) as the subject."""
    up = _MOVE_UP.search(text) or _SIGNED_PCT_UP.search(text)
    down = _MOVE_DOWN.search(text) or _SIGNED_PCT_DOWN.search(text)
    if bool(up) == bool(down):
        return ABSTAIN
    return POS if up else NEG


def extreme_day(text: str) -> int:
    """'worst day since 2008', '52-week low' / 'best day since', 'hits a record high'
    (not 'slips from record highs')."""
    if re.search(r"\bfrom (?:record|all-time|52-week) highs?\b|\btoward\b", text, re.IGNORECASE):
        return ABSTAIN
    bad, good = _DAY_BAD.search(text), _DAY_GOOD.search(text)
    if bool(bad) == bool(good):
        return ABSTAIN
    return NEG if bad else POS


def rating_change(text: str) -> int:
    up, down = _UPGRADE.search(text), _DOWNGRADE.search(text)
    if bool(up) == bool(down):
        return ABSTAIN
    return POS if up else NEG


def adverse_event(text: str) -> int:
    """Layoffs, recalls, lawsuits, fines, probes with a company as the subject or object (not when resolved)."""
    return NEG if _ADVERSE.search(text) and not _RESOLVED.search(text) and not _NEGATED.search(text) else ABSTAIN


def scheduled_announcement(text: str) -> int:
    return NEU if _SCHEDULE.search(text) else ABSTAIN


def trader_slang(text: str) -> int:
    bull, bear = _BULL_SLANG.search(text), _BEAR_SLANG.search(text)
    if bool(bull) == bool(bear):
        return ABSTAIN
    return POS if bull else NEG


def better_than_feared(text: str) -> int:
    return POS if _NEGATED.search(text) else ABSTAIN


@dataclass(frozen=True)
class LabellingFunction:
    name: str
    fn: Callable[[str], int]


LFS: tuple[LabellingFunction, ...] = tuple(
    LabellingFunction(f.__name__, f)
    for f in (
        numbers_vs_estimate,
        beats_misses_by,
        beat_miss_words,
        guidance_direction,
        price_move,
        extreme_day,
        rating_change,
        adverse_event,
        scheduled_announcement,
        trader_slang,
        better_than_feared,
    )
)


def apply_lfs(texts: Sequence[str], lfs: Sequence[LabellingFunction] = LFS) -> list[list[int]]:
    """One row per text: each LF's label or ABSTAIN."""
    return [[lf.fn(t) for lf in lfs] for t in texts]


def vote(row: Sequence[int]) -> int:
    """The majority label of the LFs that fired; ABSTAIN when none fired or the top labels tie."""
    counts: dict[int, int] = {}
    for label in row:
        if label != ABSTAIN:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        return ABSTAIN
    ranked = sorted(counts.values(), reverse=True)
    if len(ranked) > 1 and ranked[0] == ranked[1]:
        return ABSTAIN
    return max(counts, key=counts.__getitem__)


def lf_table(
    matrix: Sequence[Sequence[int]],
    gold: Sequence[int],
    lfs: Sequence[LabellingFunction] = LFS,
    labels: Sequence[str] = ("negative", "neutral", "positive"),
) -> list[dict]:
    """Per LF (and the vote): how often it fires (coverage), how often it agrees with gold when it fires
    (precision), and the labels it gives. Pure."""
    n = len(gold)
    out = []
    columns = [(lf.name, [row[j] for row in matrix]) for j, lf in enumerate(lfs)]
    columns.append(("majority vote", [vote(row) for row in matrix]))
    for name, col in columns:
        fired = [(p, g) for p, g in zip(col, gold, strict=True) if p != ABSTAIN]
        right = sum(p == g for p, g in fired)
        out.append(
            {
                "lf": name,
                "fires": len(fired),
                "coverage": round(len(fired) / n, 4) if n else 0.0,
                "precision": round(right / len(fired), 4) if fired else None,
                "gives": {labels[k]: sum(p == k for p, _ in fired) for k in range(len(labels))},
            }
        )
    return out


def format_lf_table(rows: Sequence[dict]) -> str:
    lines = [f"{'labelling function':24s} {'fires':>6s} {'coverage':>8s} {'precision':>9s}  gives (neg/neu/pos)"]
    for r in rows:
        prec = f"{r['precision']:.3f}" if r["precision"] is not None else "-"
        g = r["gives"]
        lines.append(
            f"{r['lf']:24s} {r['fires']:6d} {r['coverage']:8.2%} {prec:>9s}  "
            f"{g['negative']}/{g['neutral']}/{g['positive']}"
        )
    return "\n".join(lines)


def dev_split(rows: Sequence, seed: int = 14) -> tuple[list[int], list[int], list[int]]:
    """(fit, dev, held-out) indices of a labelled file: the project's held-out split (never used here),
    then a dev split carved out of the remaining training rows with the same function and another seed.
    LFs are written looking at `fit` and measured on `dev`; the held-out rows are for the final scores."""
    from finpulse.models.data import holdout_split

    train, held = holdout_split(rows)
    fit, dev = holdout_split([rows[i] for i in train], fraction=0.1, seed=seed)
    return [train[i] for i in fit], [train[i] for i in dev], held


def lf_report(data: str | Path) -> dict:
    """The LF table on the TFNS dev split, and how often the vote labels the unlabelled texts.

    What `finpulse distill lfs` prints.
    """
    from finpulse.models.data import read_classification_csv
    from finpulse.models.tasks import SENTIMENT
    from finpulse.models.training.soft_labels import corpus

    folder = Path(data)
    rows = read_classification_csv(folder / "tfns_sentiment_train.csv", SENTIMENT)
    _, dev, _ = dev_split(rows)
    table = lf_table(apply_lfs([rows[i].text for i in dev]), [rows[i].label for i in dev])
    others = [t.text for t in corpus([folder / n for n in UNLABELLED_FILES])]
    votes = [vote(r) for r in apply_lfs(others)]
    fired = {SENTIMENT.labels[k]: votes.count(k) for k in range(len(SENTIMENT.labels))}
    return {"dev_rows": len(dev), "lfs": table, "unlabelled": len(others), "voted": fired}


UNLABELLED_FILES = (
    "tfn_topic_train.csv",
    "sentfin_entity_train.jsonl",
    "finentity_train.jsonl",
    "finer_ord_train.txt",
    "finer_ord_dev.txt",
    "fin_sec_train.txt",
)
