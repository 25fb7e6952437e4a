"""Behavioural probes of financial language: pass rates by capability and model profile (CheckList-style).

Why: held-out accuracy on tweets and headlines said ~0.86 while the default profile read
"posts earnings of 48 cents a share vs. 53 cents estimate" as neutral and a stock's worst day since
2008 as good for the company (issue #27). A held-out score averages over whatever the data set happens
to hold; a probe names one capability (numbers against an estimate, guidance verbs, negation, two
companies with opposite verdicts, ...) and says whether the model has it. Three test types, as in
CheckList (Ribeiro et al., ACL 2020):

* MFT (minimum functionality): the expected post label and per-company labels of one text;
* INV (invariance): `text` and `pair` must get the same labels (a swapped company, a link, a hashtag);
* DIR (directional): from `text` to `pair` the score, P(positive) - P(negative), must move in the
  direction of `relation` (bad news added must not read better).

The probes live in models/probes/probes.jsonl (written by scripts/make_probes.py); the floors that the
default profile must keep in models/probes/floors.json. Post-level checks run on every profile;
per-company checks on profiles whose registry scores companies (a span head). A company is read the
way the pipeline reads a company: every occurrence of its string in the text is a mention, the
mentions' probabilities are averaged (pipeline/enrich/per_company.py does the same per ticker).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finpulse.models.artifacts.profiles import PROFILES
from finpulse.models.data import normalise
from finpulse.schemas.errors import FinpulseError

PROBES_DIR = Path(__file__).resolve().parents[1] / "probes"
PROBES_FILE = PROBES_DIR / "probes.jsonl"
FLOORS_FILE = PROBES_DIR / "floors.json"
LABELS = ("negative", "neutral", "positive")
TESTS = ("MFT", "INV", "DIR")
RELATIONS = {"INV": ("same",), "DIR": ("more_negative", "more_positive")}


class ProbeFormatError(FinpulseError, ValueError):
    """The probe file is malformed; the message names the line and what to fix."""


@dataclass(frozen=True)
class Probe:
    id: str
    capability: str
    test: str
    text: str
    post: str | None
    companies: dict[str, str | None]
    pair: str | None = None
    relation: str | None = None

    @property
    def texts(self) -> list[str]:
        return [self.text] + ([self.pair] if self.pair is not None else [])


@dataclass(frozen=True)
class Reading:
    """What a model said about one text: the post label and score, and each asked-for company's."""

    label: str
    score: float  # P(positive) - P(negative)
    companies: dict[str, tuple[str, float]] = field(default_factory=dict)


def probe_problems(p: Probe) -> list[str]:
    """Everything wrong with one probe (empty when it is well-formed)."""
    out = []
    if p.test not in TESTS:
        out.append(f"test {p.test!r} is not one of {', '.join(TESTS)}")
    labels = [p.post, *p.companies.values()]
    if any(label is not None and label not in LABELS for label in labels):
        out.append(f"labels must be one of {', '.join(LABELS)} or null")
    if p.test == "MFT":
        if p.pair is not None or p.relation is not None:
            out.append("an MFT probe has no pair or relation")
        if p.post is None and not p.companies:
            out.append("an MFT probe expects a post label or company labels")
        if any(label is None for label in p.companies.values()):
            out.append("an MFT probe gives every company a label")
    elif p.test in RELATIONS and (p.pair is None or p.relation not in RELATIONS[p.test]):
        out.append(f"a {p.test} probe needs a pair and a relation in {RELATIONS[p.test]}")
    for company in p.companies:
        for text in p.texts:
            if not company_spans(text, company):
                out.append(f"company {company!r} is not in the text {text!r}")
    return out


def read_probes(path: str | Path = PROBES_FILE) -> list[Probe]:
    """The probes of a JSONL file; a malformed line is a ProbeFormatError naming it."""
    path = Path(path)
    probes: list[Probe] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            probe = Probe(
                id=row["id"],
                capability=row["capability"],
                test=row["test"],
                text=row["text"],
                post=row.get("post"),
                companies=dict(row.get("companies") or {}),
                pair=row.get("pair"),
                relation=row.get("relation"),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ProbeFormatError(f"{path}:{n}: not a probe ({exc}); see models/evaluation/probes.py") from None
        problems = probe_problems(probe) + ([f"duplicate id {probe.id!r}"] if probe.id in seen else [])
        if problems:
            raise ProbeFormatError(f"{path}:{n} ({probe.id}): " + "; ".join(problems))
        seen.add(probe.id)
        probes.append(probe)
    return probes


def company_spans(text: str, company: str) -> list[tuple[int, int]]:
    """Every whole-word occurrence of the company's string (case-sensitive: "Target" is not "price target")."""
    return [m.span() for m in re.finditer(rf"(?<!\w){re.escape(company)}(?!\w)", text)]


def judge(probe: Probe, a: Reading, b: Reading | None, per_company: bool) -> dict[str, bool | None]:
    """Pass/fail of a probe's post check and company check (None: not checked). Pure.

    The company check passes only if every company named passes (one wrong company fails a list)."""
    post: bool | None = None
    comp: bool | None = None
    if probe.test == "MFT":
        if probe.post is not None:
            post = a.label == probe.post
        if per_company and probe.companies:
            comp = all(a.companies[c][0] == want for c, want in probe.companies.items())
    else:
        assert b is not None
        post = _related(probe.relation, (a.label, a.score), (b.label, b.score))
        if per_company and probe.companies:
            comp = all(_related(probe.relation, a.companies[c], b.companies[c]) for c in probe.companies)
    return {"post": post, "companies": comp}


def _related(relation: str | None, a: tuple[str, float], b: tuple[str, float]) -> bool:
    if relation == "same":
        return a[0] == b[0]
    if relation == "more_negative":
        return b[1] < a[1]
    return b[1] > a[1]


def pass_rates(probes: Sequence[Probe], verdicts: Sequence[dict[str, bool | None]]) -> dict[str, dict[str, Any]]:
    """capability -> {"post": {"passed", "n", "rate"}, "companies": {...}}, plus "all". Pure."""
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"post": [0, 0], "companies": [0, 0]})
    for p, v in zip(probes, verdicts, strict=True):
        for cap in (p.capability, "all"):
            for kind in ("post", "companies"):
                if v[kind] is not None:
                    counts[cap][kind][0] += bool(v[kind])
                    counts[cap][kind][1] += 1
    return {
        cap: {kind: {"passed": k, "n": n, "rate": round(k / n, 4) if n else None} for kind, (k, n) in c.items()}
        for cap, c in counts.items()
    }


def readings(enricher: Any, requests: Sequence[tuple[str, Sequence[str]]]) -> list[Reading]:
    """Read (text, companies) pairs through the enrichment engine: the post, and each company as the
    average of its mentions' probabilities (a mention the span head cannot score takes the post's)."""
    spans = [[s for c in companies for s in company_spans(text, c)] for text, companies in requests]
    with_spans = enricher.has_span_head
    preds = enricher.predict([t for t, _ in requests], spans=spans if with_spans else None)
    out = []
    for (text, companies), pred, sp in zip(requests, preds, spans, strict=True):
        by_span = {}
        if with_spans and sp:
            given = pred.mentions[len(pred.mentions) - len(sp) :]
            by_span = {(m.start, m.end): m.probs for m in given}
        comp = {}
        for c in companies:
            probs = [by_span.get(s, pred.sentiment_probs) for s in company_spans(text, c)] if with_spans else []
            if probs:
                mean = {k: sum(p[k] for p in probs) / len(probs) for k in LABELS}
                comp[c] = (max(LABELS, key=mean.__getitem__), mean["positive"] - mean["negative"])
        out.append(Reading(pred.sentiment, pred.sentiment_score, comp))
    return out


def run_probes(enricher: Any, probes: Sequence[Probe]) -> tuple[list[dict[str, bool | None]], list[dict]]:
    """Verdicts per probe and the failures (what was expected, what was read), in one engine call."""
    requests: list[tuple[str, Sequence[str]]] = []
    for p in probes:
        requests += [(t, list(p.companies)) for t in p.texts]
    read = iter(readings(enricher, requests))
    per_company = bool(enricher.has_span_head)
    verdicts, failures = [], []
    for p in probes:
        a = next(read)
        b = next(read) if p.pair is not None else None
        v = judge(p, a, b, per_company)
        verdicts.append(v)
        if v["post"] is False or v["companies"] is False:
            failures.append(
                {
                    "id": p.id,
                    "text": p.text,
                    "pair": p.pair,
                    "expected": p.post or p.relation,
                    "expected_companies": p.companies,
                    "read": [a.label, round(a.score, 3)],
                    "read_pair": [b.label, round(b.score, 3)] if b else None,
                    "read_companies": {c: [lab, round(s, 3)] for c, (lab, s) in a.companies.items()},
                    "failed": [k for k, ok in v.items() if ok is False],
                }
            )
    return verdicts, failures


def evaluate_profile(
    profile: str, probes: Sequence[Probe], device: str = "cpu", registry_path: str | Path | None = None
) -> dict[str, Any]:
    """One profile's pass rates by capability (and its failures), through the engine the pipeline runs.
    `registry_path` probes another registry under the profile's name (a candidate before adoption)."""
    from finpulse.models.artifacts.registry import load_registry
    from finpulse.models.engine.inference import Enricher
    from finpulse.pipeline.runtime.settings import InferenceSettings

    registry = load_registry(registry_path or PROFILES[profile])
    enricher = Enricher(registry, InferenceSettings(device=device))
    verdicts, failures = run_probes(enricher, probes)
    return {
        "profile": profile,
        "model_version": registry.model_version,
        "per_company": bool(enricher.has_span_head),
        "rates": pass_rates(probes, verdicts),
        "failures": failures,
    }


def read_floors(path: str | Path = FLOORS_FILE) -> dict[str, dict[str, dict[str, float]]]:
    """profile -> capability -> {"post": floor, "companies": floor}."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def below_floors(rates: dict[str, dict[str, Any]], floors: dict[str, dict[str, float]]) -> list[str]:
    """Each (capability, kind) whose pass rate is under its floor, as a line saying by how much. Pure."""
    out = []
    for cap, kinds in floors.items():
        for kind, floor in kinds.items():
            got = rates.get(cap, {}).get(kind, {}).get("rate")
            if got is None or got < floor:
                out.append(f"{cap} {kind}: {got} < floor {floor}")
    return out


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Pass rates as a text table: one row per capability, post and per-company columns per profile."""
    caps = sorted({c for r in results for c in r["rates"] if c != "all"}) + ["all"]
    head = ["capability"] + [f"{r['profile']} {kind}" for r in results for kind in ("post", "company")]
    rows = [head]
    for cap in caps:
        row = [cap]
        for r in results:
            for kind in ("post", "companies"):
                c = r["rates"].get(cap, {}).get(kind, {"n": 0})
                row.append(f"{c['rate']:.0%} ({c['passed']}/{c['n']})" if c["n"] else "-")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def leaked(probes: Iterable[Probe], corpus: Iterable[str]) -> list[str]:
    """Ids of the probes any of whose texts occurs (normalised, as a whole text or inside one) in the corpus."""
    joined = "\x00".join(normalise(t) for t in corpus)
    return [p.id for p in probes if any(normalise(t) in joined for t in p.texts)]
