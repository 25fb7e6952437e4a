"""The faster linking (one tokenisation, name ends found during the scan, fast paths in `normalize`)
gives exactly what the previous implementation gave, kept as tests/support/linking_reference.py: on ~19,000
real news sentences and tweets (../shared/data), generated posts and strings built to hit the edges
of the normalisation fast paths (every Unicode character beside a name)."""

import csv
import json
import re
from types import SimpleNamespace

import pytest
from support import linking_reference as old

from finpulse.models.engine.inference import MentionSentiment
from finpulse.pipeline.devtools.bench import _posts
from finpulse.pipeline.enrich import companies as new
from finpulse.pipeline.enrich.handler import company_spans
from finpulse.pipeline.enrich.per_company import company_sentiment
from finpulse.pipeline.enrich.tickers import cashtag_spans, extract_cashtags


@pytest.fixture(scope="module")
def real_texts(real_data) -> list[tuple[str, list[tuple[int, int]]]]:
    """(text, labelled entity spans) of the real sets, then generated posts (no labels)."""
    data = real_data.path("finentity_train.jsonl", "sentfin_entity_train.jsonl", "tfns_sentiment_train.csv").parent
    out = []
    for name in ("finentity_train.jsonl", "sentfin_entity_train.jsonl"):
        for line in (data / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.append((row["text"], [(e["start"], e["end"]) for e in row["entities"]]))
    with open(data / "tfns_sentiment_train.csv", encoding="utf-8", newline="") as f:
        out += [(row["text"], []) for row in csv.DictReader(f)]
    out += [(p["text"], []) for p in _posts(1000, 3)]
    return out + _nested_names()


def _nested_names() -> list[tuple[str, list[tuple[int, int]]]]:
    """Texts where a longer alias of another company starts with an S&P 500 alias ("Apple Hospitality"
    beside Apple): the case where a name's end is not simply the run the scan linked."""
    g = new.load_gazetteer()
    sp500 = {a for a, (k, _) in g.by_alias.items() if g.companies[k].sp500}
    out = []
    for alias in sorted(g.by_alias):
        words = alias.split()
        for n in range(1, len(words)):
            if " ".join(words[:n]) in sp500:
                name = alias.title()
                out += [(f"Investors bought {name} shares.", []), (f"{name} {words[0].title()} fell", []),
                        (f"What {alias.upper()} said on Monday", [])]
    return out


def _fresh(gazetteer) -> None:
    new.normalize.cache_clear()
    gazetteer.scans.clear()


def test_scan_and_name_spans_match_the_reference_on_real_text(real_texts):
    g_new, g_old = new.load_gazetteer(), old.load_gazetteer()
    _fresh(g_new)
    texts = real_texts
    assert len(texts) > 19_000
    for text, _ in texts:
        want_spans = old.cashtag_spans(text) + old.name_spans(text, g_old)
        assert company_spans(text) == want_spans, text  # first: the spans fill the memo, as in production
        assert new.scan_text(text, g_new) == old.scan_text(text, g_old), text


def test_company_mentions_and_sentiment_match_the_reference_on_real_text(real_texts):
    g_new, g_old = new.load_gazetteer(), old.load_gazetteer()
    _fresh(g_new)
    for text, labelled in real_texts:
        spans = labelled + company_spans(text)  # ORG entities: the labelled ones, else the scanned names
        entities = [SimpleNamespace(type="ORG", text=text[s:e], start=s, end=e) for s, e in spans]
        mentions = [
            MentionSentiment(text[s:e], s, e, "neutral", 0.0,
                             {"negative": (k % 3) / 4, "neutral": 0.5, "positive": (k % 5) / 8}, "ner")
            for k, (s, e) in enumerate(spans + cashtag_spans(text))
        ]
        given = ["aapl", "$fb"] if len(text) % 7 == 0 else []
        assert new.company_mentions(text, entities, g_new, given) == old.company_mentions(text, entities, g_old, given)
        assert company_sentiment(text, mentions, g_new) == company_sentiment(text, mentions, g_old), text
        for s, e in spans:
            assert g_new.link(text[s:e], text, s) == g_old.link(text[s:e], text, s)
            assert g_new.link(text[s:e]) == g_old.link(text[s:e])


def test_normalize_matches_the_reference_on_every_run_and_every_character(real_texts):
    names = set()
    for text, _ in real_texts[:6000]:
        tokens = list(new._TOKEN.finditer(text))
        for i in range(len(tokens)):
            for n in range(1, min(new.MAX_ALIAS_WORDS, len(tokens) - i) + 1):
                names.add(text[tokens[i].start() : tokens[i + n - 1].end()])
    # every character of the first planes, and every one anywhere that case folding changes or that is
    # space, beside a name, a suffix and "the"
    odd = [chr(c) for c in range(0x110000) if c < 0x3400 or (not 0xD800 <= c <= 0xDFFF and (
        chr(c).casefold() != chr(c) or chr(c).isspace()))]
    for c in odd:
        names.update((f"Apple{c} Inc", f"{c}The Target Corp", f"the{c}Boeing", c + c))
    names.update(("", " ", "The", "the ", "İstanbul Inc", "ǅ Inc", "Straße AG", "THE  APPLE INC", "Apple\u00a0Inc",
                  "Apple\nInc\n", "ΣΑΣ Inc", "ﬁat Corp", "Alphabet’s", "Apples'", "AT&T Inc.", "the the"))
    space = re.compile(r"\s")  # the premises of the fast paths in `_basic`, over every character
    assert all(bool(space.match(chr(c))) == chr(c).isspace() for c in range(0x110000))
    assert not any(chr(c).isalnum() and chr(c).isspace() for c in range(0x110000))
    new.normalize.cache_clear()
    for name in names:
        assert new.normalize(name) == old.normalize.__wrapped__(name), repr(name)
        assert new._basic(name) == old._basic(name), repr(name)


def test_cashtag_readers_match_the_reference_on_real_text_and_odd_dollars(real_texts):
    texts = [text for text, _ in real_texts]
    texts += [f"{d}{t} up" for d in ("$", "\uff04", "\ufe69", "L$", "A-$") for t in ("AAPL", "d", "BRK.B", "ab")]
    for text in texts:
        assert extract_cashtags(text) == old.extract_cashtags(text), text
        assert cashtag_spans(text) == old.cashtag_spans(text), text
