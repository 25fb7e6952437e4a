"""Write models/probes/probes.jsonl: the behavioural probes of financial language (CheckList-style).

Why a generator: CheckList (Ribeiro et al., ACL 2020) gets variety from templates and fillers, so
that a probe tests a capability ("48 cents vs. 53 cents estimate" is a miss) and not one company or
one number. Every template and every label here was written by hand for the registers the product
reads (wire headlines, analyst notes, trader tweets with cashtags and slang); the fillers are
drawn with a fixed seed, so the file is reproducible and reviewable as data. Rerun after editing:

    python scripts/make_probes.py            # rewrites models/probes/probes.jsonl

A probe is one JSON line: `id`, `capability`, `test` (MFT: labels expected; INV: the label must not
change between `text` and `pair`; DIR: the score, P(positive) - P(negative), must move in the
direction of `relation` from `text` to `pair`), `post` (expected post label or null), `companies`
(company string as written in the text -> expected label, or null where only the relation is
checked). The probes are never training data (tests/models/test_probes.py checks that no probe text is in
the files training reads).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "models" / "probes" / "probes.jsonl"
NEG, NEU, POS = "negative", "neutral", "positive"

# (everyday name, ticker)
COS = [
    ("Coca-Cola", "KO"),
    ("Apple", "AAPL"),
    ("Nike", "NKE"),
    ("Tesla", "TSLA"),
    ("Boeing", "BA"),
    ("Intel", "INTC"),
    ("Netflix", "NFLX"),
    ("Walmart", "WMT"),
    ("Target", "TGT"),
    ("General Motors", "GM"),
    ("Starbucks", "SBUX"),
    ("Disney", "DIS"),
    ("PepsiCo", "PEP"),
    ("Harley-Davidson", "HOG"),
    ("Micron", "MU"),
    ("Nvidia", "NVDA"),
    ("Salesforce", "CRM"),
    ("Oracle", "ORCL"),
    ("Pfizer", "PFE"),
    ("Moderna", "MRNA"),
    ("JPMorgan", "JPM"),
    ("Wells Fargo", "WFC"),
    ("Delta Air Lines", "DAL"),
    ("Carnival", "CCL"),
    ("Home Depot", "HD"),
    ("McDonald's", "MCD"),
    ("Chipotle", "CMG"),
    ("Caterpillar", "CAT"),
    ("Exxon Mobil", "XOM"),
    ("Peloton", "PTON"),
    ("Snap", "SNAP"),
    ("PayPal", "PYPL"),
    ("Uber", "UBER"),
    ("Zoom Video", "ZM"),
    ("Lululemon", "LULU"),
    ("FedEx", "FDX"),
    ("Costco", "COST"),
    ("Adobe", "ADBE"),
]
BROKERS = [
    "Goldman Sachs",
    "Morgan Stanley",
    "JPMorgan",
    "Jefferies",
    "Barclays",
    "UBS",
    "Citi",
    "Wedbush",
    "Bernstein",
    "Piper Sandler",
    "Raymond James",
    "BofA",
]
LINKS = ["https://t.co/Xk3vQ9aLmP", "https://t.co/7hRt2bWqZe", "https://t.co/pL0sN4cYdA", "https://t.co/Qm8uF1jGvK"]


class Writer:
    def __init__(self, seed: int = 27) -> None:
        self.rng = random.Random(seed)
        self.rows: list[dict] = []
        self.counts: dict[str, int] = {}

    def add(
        self,
        capability: str,
        test: str,
        text: str,
        post: str | None,
        companies: dict[str, str | None] | None = None,
        pair: str | None = None,
        relation: str | None = None,
    ) -> None:
        n = self.counts.get(capability, 0) + 1
        self.counts[capability] = n
        self.rows.append(
            {
                "id": f"{capability}-{n:03d}",
                "capability": capability,
                "test": test,
                "text": text,
                "post": post,
                "companies": companies or {},
                "pair": pair,
                "relation": relation,
            }
        )

    def cos(self, k: int) -> list[tuple[str, str]]:
        return self.rng.sample(COS, k)

    def pick(self, seq):
        return self.rng.choice(seq)


def cents(v: int) -> str:
    return f"{v} cents" if v < 100 else f"${v / 100:.2f}"


def earnings_numbers(w: Writer) -> None:
    """Beats and misses stated only as numbers against the estimate: the reader must compare."""
    cap = "earnings_numbers"
    for name, tk in [("Coca-Cola", "KO")]:  # the issue's own shapes, as probes (not the tweets themselves)
        w.add(cap, "MFT", f"{name} revs. miss $11.98B vs. $12.12B (est) ${tk}", NEG, {f"${tk}": NEG})
        w.add(
            cap,
            "MFT",
            f"EARNINGS ALERT: {name} posts earnings of 48 cents a share vs. 53 cents estimate",
            NEG,
            {name: NEG},
        )
    templates = [
        ("{name} Q{q} EPS {a} vs. {e} est.", "name"),
        ("${tk} Q{q} EPS {a} vs {e} consensus", "tag"),
        ("EARNINGS ALERT: {name} posts earnings of {a} a share vs. {e} estimate", "name"),
        ("{name} reports Q{q} adj. EPS of {a}, Street was looking for {e}", "name"),
        ("${tk} prints {a} per share; analysts expected {e}", "tag"),
        ("{name} (${tk}) Q{q} earnings: {a} per share vs. {e} expected", "tag"),
    ]
    rev_templates = [
        ("{name} revenue ${a}B vs. ${e}B est.", "name"),
        ("${tk} revs {a}B vs {e}B expected", "tag"),
        ("{name} Q{q} sales come in at ${a} billion, below/above? consensus of ${e} billion", "name"),
    ]
    for i in range(18):
        name, tk = w.pick(COS)
        tpl, key = templates[i % len(templates)]
        e = w.rng.randint(25, 320)
        beat = i % 2 == 0
        a = e + w.rng.randint(2, 25) * (1 if beat else -1)
        text = tpl.format(name=name, tk=tk, q=w.rng.randint(1, 4), a=cents(a), e=cents(e))
        lab = POS if beat else NEG
        w.add(cap, "MFT", text, lab, {name if key == "name" else f"${tk}": lab})
    for i in range(12):
        name, tk = w.pick(COS)
        tpl, key = rev_templates[i % len(rev_templates)]
        e = round(w.rng.uniform(2.0, 60.0), 2)
        beat = i % 2 == 1
        a = round(e * (1 + w.rng.uniform(0.01, 0.06) * (1 if beat else -1)), 2)
        tpl = tpl.replace("below/above?", "above" if beat else "below")
        text = tpl.format(name=name, tk=tk, q=w.rng.randint(1, 4), a=f"{a:.2f}", e=f"{e:.2f}")
        lab = POS if beat else NEG
        w.add(cap, "MFT", text, lab, {name if key == "name" else f"${tk}": lab})


def earnings_words(w: Writer) -> None:
    """Beats and misses said in words, in wire and tweet register."""
    cap = "earnings_words"
    pos = [
        "{name} tops Wall Street estimates as sales jump",
        "${tk} crushes earnings, revenue beat across the board",
        "{name} beats on the top and bottom line",
        "{name} profit comes in well ahead of forecasts",
        "${tk} blowout quarter, beat and raise",
        "{name} quarterly profit surges, beats expectations",
        "{name} earnings beat as margins widen",
        "${tk} smashes Q3 estimates",
    ]
    neg = [
        "{name} misses Wall Street estimates as sales slow",
        "${tk} misses on revenue, EPS light",
        "{name} quarterly profit falls short of forecasts",
        "{name} posts surprise loss",
        "${tk} whiffs on earnings, margins compress",
        "{name} results disappoint, profit drops 20%",
        "{name} swings to a loss as costs balloon",
        "${tk} ugly quarter: miss on every line",
    ]
    for group, lab in ((pos, POS), (neg, NEG)):
        for tpl in group:
            name, tk = w.pick(COS)
            key = name if "{name}" in tpl else f"${tk}"
            w.add(cap, "MFT", tpl.format(name=name, tk=tk), lab, {key: lab})


def guidance(w: Writer) -> None:
    cap = "guidance"
    pos = [
        "{name} raises full-year guidance",
        "{name} lifts 2026 outlook after strong quarter",
        "${tk} guides Q4 revenue above consensus",
        "{name} boosts annual sales forecast",
        "{name} hikes profit outlook on robust demand",
        "${tk} raises FY EPS guide to $4.10-$4.20 from $3.90-$4.00",
        "{name} now expects revenue growth of 12%, up from 8% previously",
    ]
    neg = [
        "{name} cuts full-year guidance",
        "{name} slashes outlook as demand weakens",
        "${tk} guides Q4 below the Street",
        "{name} lowers annual sales forecast",
        "{name} no longer expects to turn a profit this year",
        "${tk} cuts FY EPS guide to $2.10-$2.30 from $2.60-$2.80",
        "{name} withdraws its 2026 forecast, citing uncertainty",
        "{name} warns of weaker second half",
        "{name} trims revenue outlook for a second time",
    ]
    neu = ["{name} reaffirms full-year guidance", "{name} maintains its 2026 outlook", "${tk} reiterates FY guidance"]
    for group, lab in ((pos, POS), (neg, NEG), (neu, NEU)):
        for tpl in group:
            name, tk = w.pick(COS)
            key = name if "{name}" in tpl else f"${tk}"
            w.add(cap, "MFT", tpl.format(name=name, tk=tk), lab, {key: lab})


def price_moves(w: Writer) -> None:
    cap = "price_moves"
    w.add(
        cap,
        "MFT",
        "$KO is having its worst day since Oct. 2008, and Buffett's stake is down $1.1 billion",
        NEG,
        {"$KO": NEG},
    )
    neg = [
        "{name} shares fall {p}% after the bell",
        "${tk} down {p}% premarket",
        "{name} stock sinks {p}% to a 52-week low",
        "${tk} is having its worst day since March 2020",
        "{name} shares tumble {p}%, worst day in a decade",
        "{name} stock plunges {p}% as investors flee",
        "${tk} -{p}% and falling",
        "{name} shares slide for a fifth straight session",
        "{name} wipes out $20 billion in market value",
        "${tk} hits a new all-time low",
        "{name} stock craters {p}% on the open",
        "{name} shares drop {p}% in heavy volume",
    ]
    pos = [
        "{name} shares jump {p}% after the bell",
        "${tk} up {p}% premarket",
        "{name} stock soars {p}% to a record high",
        "${tk} is having its best day since 2009",
        "{name} shares surge {p}%, best day in years",
        "{name} stock rallies {p}% as buyers pile in",
        "${tk} +{p}% and climbing",
        "{name} shares rise for a seventh straight session",
        "{name} adds $30 billion in market value",
        "${tk} hits a new all-time high",
        "{name} stock rockets {p}% on the open",
        "{name} shares climb {p}% in heavy volume",
    ]
    for group, lab in ((neg, NEG), (pos, POS)):
        for tpl in group:
            name, tk = w.pick(COS)
            key = name if "{name}" in tpl else f"${tk}"
            w.add(cap, "MFT", tpl.format(name=name, tk=tk, p=w.rng.randint(3, 24)), lab, {key: lab})


def analyst_ratings(w: Writer) -> None:
    cap = "analyst_ratings"
    neg = [
        "{b} downgrades {name} to Sell from Neutral",
        "{name} cut to Underperform at {b}",
        "${tk} downgraded to Hold at {b}, PT cut to ${pt}",
        "{b} slashes {name} price target to ${pt} from ${pt2}",
        "{name} downgraded to underweight at {b} on valuation",
        "{b} turns bearish on {name}, sees 30% downside",
        "${tk} PT lowered to ${pt} at {b}, reiterates Sell",
        "{b} double-downgrades {name} to Sell",
    ]
    pos = [
        "{b} upgrades {name} to Buy from Neutral",
        "{name} raised to Outperform at {b}",
        "${tk} upgraded to Buy at {b}, PT raised to ${pt2}",
        "{b} lifts {name} price target to ${pt2} from ${pt}",
        "{name} upgraded to overweight at {b}, sees 25% upside",
        "{b} turns bullish on {name}",
        "${tk} added to {b} conviction buy list",
        "{b} double-upgrades {name} to Buy",
    ]
    neu = [
        "{b} initiates {name} at Neutral, PT ${pt}",
        "{name} started at hold at {b}",
        "{b} reiterates Equal Weight on {name}",
        "${tk} coverage assumed at {b} with Market Perform",
    ]
    for group, lab in ((neg, NEG), (pos, POS), (neu, NEU)):
        for tpl in group:
            name, tk = w.pick([c for c in COS if c[0] not in BROKERS])
            pt = w.rng.randint(20, 300)
            key = name if "{name}" in tpl else f"${tk}"
            w.add(
                cap,
                "MFT",
                tpl.format(name=name, tk=tk, b=w.pick(BROKERS), pt=pt, pt2=pt + w.rng.randint(10, 60)),
                lab,
                {key: lab},
            )


def adverse_events(w: Writer) -> None:
    cap = "adverse_events"
    tpls = [
        "{name} to cut 6,000 jobs in restructuring",
        "{name} lays off 12% of its workforce",
        "${tk} announces layoffs as sales slump",
        "{name} sued by shareholders over misleading statements",
        "{name} hit with class action lawsuit",
        "DOJ sues {name} over antitrust violations",
        "{name} recalls 400,000 vehicles over fire risk",
        "{name} recalls products after contamination reports",
        "{name} fined $1.2 billion by EU regulators",
        "SEC charges {name} with accounting fraud",
        "{name} under federal investigation over safety lapses",
        "{name} CEO resigns amid probe",
        "{name} files for Chapter 11 bankruptcy protection",
        "{name} suspends dividend to conserve cash",
        "Moody's cuts {name} to junk",
        "${tk} hit by data breach affecting 40 million customers",
        "{name} loses key patent case, owes $900 million",
        "{name} halts production after plant explosion",
        "{name} misses debt payment",
        "{name} faces strike as union talks collapse",
    ]
    for tpl in tpls:
        name, tk = w.pick(COS)
        key = name if "{name}" in tpl else f"${tk}"
        w.add(cap, "MFT", tpl.format(name=name, tk=tk), NEG, {key: NEG})


def favourable_events(w: Writer) -> None:
    cap = "favourable_events"
    tpls = [
        "{name} announces $10 billion share buyback",
        "{name} raises quarterly dividend by 10%",
        "{name} wins $3 billion Pentagon contract",
        "FDA approves {name}'s new drug",
        "{name} settles lawsuit, removing overhang",
        "{name} receives takeover offer at 40% premium",
        "${tk} record holiday sales",
        "{name} added to the S&P 500",
        "Moody's upgrades {name} to investment grade",
        "{name} wins dismissal of shareholder lawsuit",
        "{name} subscriber growth crushes expectations",
        "{name} margins hit record as costs fall",
    ]
    for tpl in tpls:
        name, tk = w.pick(COS)
        key = name if "{name}" in tpl else f"${tk}"
        w.add(cap, "MFT", tpl.format(name=name, tk=tk), POS, {key: POS})


def neutral_announcements(w: Writer) -> None:
    cap = "neutral_announcements"
    tpls = [
        "{name} to report Q3 earnings on Tuesday after the close",
        "{name} declares quarterly dividend of $0.46 per share",
        "{name} to present at the Goldman Sachs technology conference",
        "{name} names new chief financial officer",
        "{name} schedules annual shareholder meeting for May 14",
        "What to watch when {name} reports earnings this week",
        "${tk} earnings preview: what analysts expect",
        "{name} files 10-Q with the SEC",
        "{name} opens new headquarters in Austin",
        "{name} to hold investor day in November",
        "{name} prices $1.5 billion bond offering",
        "{name} completes previously announced acquisition",
        "${tk} options volume elevated ahead of earnings",
        "{name} changes ticker symbol effective Monday",
        "{name} to webcast fourth-quarter results call",
    ]
    for tpl in tpls:
        name, tk = w.pick(COS)
        key = name if "{name}" in tpl else f"${tk}"
        w.add(cap, "MFT", tpl.format(name=name, tk=tk), NEU, {key: NEU})


def negation_hedging(w: Writer) -> None:
    """Negation and hedging flip or soften the cue word: the label follows the whole phrase."""
    cap = "negation_hedging"
    pos = [
        "{name} results not as bad as feared, shares rise",
        "{name} loss narrower than expected",
        "{name} did not miss estimates for the first time in a year, beats instead",
        "${tk} guidance cut was smaller than feared; stock bounces",
        "{name} no longer expects a loss this year",
        "{name} avoids layoffs, keeps full-year forecast raised",
        "Worst is over for {name}, says CFO as orders recover",
        "{name} sales decline less than expected, shares gain",
        "${tk} never looked better: record margins",
        "{name} says the recall will not hurt earnings; stock recovers",
    ]
    neg = [
        "{name} no longer expects revenue growth this year",
        "{name} fails to beat estimates",
        "${tk} not a beat: revenue light, guide lower",
        "{name} earnings growth far weaker than hoped",
        "{name} unable to meet its margin targets",
        "{name} doesn't expect demand to recover until 2028",
        "${tk} rally fizzles as profit falls short",
        "{name} profit rises, but not enough to meet forecasts",
        "{name} no longer sees a rebound in the second half",
        "{name} will not pay a dividend this quarter",
    ]
    neu = [
        "{name} may or may not beat estimates next week",
        "Is {name} a buy ahead of earnings?",
        "{name}: not much changed after the investor day",
        "Analysts split on whether {name} can beat this quarter",
        "Will ${tk} beat or miss? Options imply a 7% move",
    ]
    for group, lab in ((pos, POS), (neg, NEG), (neu, NEU)):
        for tpl in group:
            name, tk = w.pick(COS)
            key = name if "{name}" in tpl else f"${tk}"
            w.add(cap, "MFT", tpl.format(name=name, tk=tk), lab, {key: lab})


def two_company_contrast(w: Writer) -> None:
    """Two companies, opposite verdicts in one post: per-company labels must differ (post left open)."""
    cap = "two_company_contrast"
    w.add(
        cap, "MFT", "Closing Bell: $KO Coca-Cola fizzles, Harley-Davidson $HOG roars", None, {"$KO": NEG, "$HOG": POS}
    )
    tpls = [
        "${a} fizzles, ${b} roars",
        "${a} sinks while ${b} soars",
        "{a_name} tumbles, {b_name} rallies",
        "{a_name} misses estimates but {b_name} beats",
        "Losers: ${a}. Winners: ${b}.",
        "{a_name} cuts guidance; {b_name} raises it",
        "{a_name} shares fall 8% as {b_name} takes market share",
        "{b_name} gains after {a_name} recalls 1 million cars",
        "{b_name} upgraded to Buy, {a_name} downgraded to Sell",
        "Long ${b}, short ${a} into the print",
        "{a_name} loses key contract to {b_name}",
        "{b_name} jumps 6% and {a_name} slides 4% after earnings",
        "${a} puts printing, ${b} calls printing",
        "Rotation out of ${a} into ${b} today",
        "{a_name} down 5%, {b_name} up 7% in early trade",
    ]
    for tpl in tpls:
        (an, at), (bn, bt) = w.cos(2)
        text = tpl.format(a=at, b=bt, a_name=an, b_name=bn)
        ka = an if "{a_name}" in tpl else f"${at}"
        kb = bn if "{b_name}" in tpl else f"${bt}"
        w.add(cap, "MFT", text, None, {ka: NEG, kb: POS})
    # the same shapes, verdicts swapped in the other order of mention
    tpls2 = [
        "${a} roars, ${b} fizzles",
        "{a_name} rallies as {b_name} tumbles",
        "{a_name} beats; {b_name} misses",
        "Winners: ${a}. Losers: ${b}.",
        "{a_name} upgraded, {b_name} downgraded at Barclays",
        "{a_name} soars 10% while {b_name} drops 6%",
        "${a} to the moon, ${b} bagholders crying",
        "{a_name} wins the contract {b_name} lost",
        "{a_name} raises outlook, {b_name} slashes it",
        "${a} ripping, ${b} dumping",
    ]
    for tpl in tpls2:
        (an, at), (bn, bt) = w.cos(2)
        text = tpl.format(a=at, b=bt, a_name=an, b_name=bn)
        ka = an if "{a_name}" in tpl else f"${at}"
        kb = bn if "{b_name}" in tpl else f"${bt}"
        w.add(cap, "MFT", text, None, {ka: POS, kb: NEG})


def ticker_lists(w: Writer) -> None:
    """Several tickers sharing one verdict: every company takes the list's label."""
    cap = "ticker_lists"
    pos = [
        "52-week highs: {l}",
        "New all-time highs today: {l}",
        "Top gainers this morning: {l}",
        "Biggest winners of the week: {l}",
        "Breaking out to new highs: {l}",
        "Stocks hitting record highs: {l}",
        "Upgrades today: {l}",
        "Beat and raise this week: {l}",
    ]
    neg = [
        "52-week lows: {l}",
        "New lows today: {l}",
        "Top losers this morning: {l}",
        "Biggest losers of the week: {l}",
        "Breaking down to new lows: {l}",
        "Downgrades today: {l}",
        "Missed and cut guidance this week: {l}",
        "Stocks getting crushed after hours: {l}",
    ]
    for group, lab in ((pos, POS), (neg, NEG)):
        for tpl in group:
            picks = w.cos(w.rng.randint(3, 4))
            tags = [f"${t}" for _, t in picks]
            w.add(cap, "MFT", tpl.format(l=" ".join(tags)), lab, {t: lab for t in tags})


def slang_emoji(w: Writer) -> None:
    cap = "slang_emoji"
    pos = [
        "${tk} to the moon 🚀🚀🚀",
        "${tk} calls printing 💰",
        "Loaded up on ${tk}, this is going parabolic 📈",
        "${tk} ripping today, shorts getting squeezed",
        "${tk} mooning after earnings 🚀",
        "${tk} breakout confirmed, LFG",
        "${tk} diamond hands paying off 💎🙌 up 30% this week",
        "${tk} squeeze is on, shorts are toast 🔥",
        "${tk} green day, bulls in control 🐂",
        "Told you ${tk} would run. Up 18% since my entry 🚀",
        "${tk} just keeps printing money, all-time high again",
        "${tk} bears in shambles 😂 up another 9%",
    ]
    neg = [
        "${tk} puts printing 💰",
        "${tk} bagholders in shambles",
        "${tk} rug pull, down 40% 📉",
        "${tk} dumping hard, stop losses hit",
        "${tk} getting crushed, longs wrecked 💀",
        "${tk} is dead money, sold everything",
        "${tk} bleeding again today 🩸",
        "${tk} breaking down, next stop $10 📉",
        "Bought ${tk} at the top, now down 60% 😭",
        "${tk} falling knife, do not catch it",
        "${tk} red all week, bulls capitulating 🐻",
        "${tk} tanking after hours, ouch",
    ]
    for group, lab in ((pos, POS), (neg, NEG)):
        for tpl in group:
            _, tk = w.pick(COS)
            w.add(cap, "MFT", tpl.format(tk=tk), lab, {f"${tk}": lab})


def inv_entity_swap(w: Writer) -> None:
    """Swapping the company (name or ticker) must not change the post label."""
    cap = "inv_entity_swap"
    tpls = [
        "{name} shares fall 9% after weak forecast",
        "{name} beats estimates, raises guidance",
        "${tk} downgraded to Sell at Barclays",
        "{name} to report earnings on Thursday",
        "{name} recalls 200,000 vehicles",
        "${tk} up 12% premarket on takeover talk",
        "{name} announces $5 billion buyback",
        "{name} cuts 3,000 jobs",
        "${tk} hits 52-week low",
        "{name} declares quarterly dividend",
        "${tk} to the moon 🚀",
        "{name} misses on revenue",
        "{name} names new CEO",
        "{name} wins $2 billion contract",
        "${tk} guides below consensus",
        "{name} sued by FTC",
        "{name} posts record quarterly profit",
        "${tk} started at Neutral at UBS",
        "{name} stock slides on margin worries",
        "{name} raises full-year outlook",
    ]
    for tpl in tpls:
        (an, at), (bn, bt) = w.cos(2)
        w.add(cap, "INV", tpl.format(name=an, tk=at), None, {}, tpl.format(name=bn, tk=bt), "same")


def inv_noise(w: Writer) -> None:
    """Links, handles, hashtags, a wire prefix, casing: none of them changes any label."""
    cap = "inv_noise"
    bases = [
        ("{name} shares fall 9% after weak forecast", "name"),
        ("{name} beats estimates, raises guidance", "name"),
        ("${tk} downgraded to Sell at Barclays", "tag"),
        ("{name} to report earnings on Thursday", "name"),
        ("${tk} up 12% premarket on takeover talk", "tag"),
        ("{name} cuts 3,000 jobs", "name"),
        ("{name} misses on revenue, shares slide", "name"),
        ("{name} wins $2 billion contract", "name"),
        ("${tk} guides below consensus", "tag"),
        ("{name} posts record quarterly profit", "name"),
    ]
    noises = [
        lambda s: f"{s} {w.pick(LINKS)}",
        lambda s: f"BREAKING: {s}",
        lambda s: f"{s} via @markets",
        lambda s: f"{s} #stocks #investing",
        lambda s: f"{s} (Reuters)",
        lambda s: f"{s} | more: {w.pick(LINKS)}",
    ]
    for i, (tpl, key) in enumerate(bases):
        for k in range(2):
            name, tk = w.pick(COS)
            text = tpl.format(name=name, tk=tk)
            noisy = noises[(2 * i + k) % len(noises)](text)
            w.add(cap, "INV", text, None, {name if key == "name" else f"${tk}": None}, noisy, "same")


def dir_bad_news(w: Writer) -> None:
    """Adding bad news about the company must not make it read more positive."""
    cap = "dir_bad_news"
    bases = [
        "{name} reports third-quarter results",
        "{name} CEO speaks at industry conference",
        "{name} beats estimates",
        "{name} launches new product line",
        "${tk} earnings out",
        "{name} holds investor day",
        "{name} raises guidance",
        "${tk} trading volume picks up",
        "{name} opens 50 new stores",
        "{name} names new CFO",
        "${tk} Q2 numbers are in",
        "{name} updates on supply chain",
        "{name} reports monthly sales",
        "${tk} heading into the close",
        "{name} comments on pricing",
    ]
    adds = [
        "; shares fall 9%",
        ", but cuts full-year outlook",
        "; stock worst day since 2008",
        " as SEC opens probe",
        ", then announces 5,000 layoffs",
        " and misses on revenue",
        "; downgraded to Sell",
        " amid recall of 1M units",
    ]
    for i, tpl in enumerate(bases):
        name, tk = w.pick(COS)
        text = tpl.format(name=name, tk=tk)
        key = name if "{name}" in tpl else f"${tk}"
        w.add(cap, "DIR", text, None, {key: None}, text + adds[i % len(adds)], "more_negative")


def dir_good_news(w: Writer) -> None:
    cap = "dir_good_news"
    bases = [
        "{name} reports third-quarter results",
        "{name} CEO speaks at industry conference",
        "{name} misses estimates",
        "{name} launches new product line",
        "${tk} earnings out",
        "{name} holds investor day",
        "{name} cuts 2,000 jobs",
        "${tk} trading volume picks up",
        "{name} opens 50 new stores",
        "{name} names new CFO",
        "${tk} Q2 numbers are in",
        "{name} updates on supply chain",
        "{name} reports monthly sales",
        "${tk} heading into the close",
        "{name} comments on pricing",
    ]
    adds = [
        "; shares jump 9%",
        ", and raises full-year outlook",
        "; stock best day since 2009",
        " as regulator drops probe",
        ", then announces $5B buyback",
        " and beats on revenue",
        "; upgraded to Buy",
        " with record orders",
    ]
    for i, tpl in enumerate(bases):
        name, tk = w.pick(COS)
        text = tpl.format(name=name, tk=tk)
        key = name if "{name}" in tpl else f"${tk}"
        w.add(cap, "DIR", text, None, {key: None}, text + adds[i % len(adds)], "more_positive")


def main() -> None:
    w = Writer()
    for make in (
        earnings_numbers,
        earnings_words,
        guidance,
        price_moves,
        analyst_ratings,
        adverse_events,
        favourable_events,
        neutral_announcements,
        negation_hedging,
        two_company_contrast,
        ticker_lists,
        slang_emoji,
        inv_entity_swap,
        inv_noise,
        dir_bad_news,
        dir_good_news,
    ):
        make(w)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in w.rows), encoding="utf-8")
    print(f"{len(w.rows)} probes -> {OUT}")
    for cap, n in w.counts.items():
        print(f"  {cap:24s} {n}")


if __name__ == "__main__":
    main()
