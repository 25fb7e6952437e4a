"""Token-level IOB2 predictions -> character-span entities on the original text. Pure (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenPrediction:
    start: int  # character offsets of the token in the original text
    end: int
    word: int | None  # pre-tokenizer word index; sub-words of one word share it
    label: str
    score: float


@dataclass(frozen=True)
class EntitySpan:
    text: str
    type: str
    start: int
    end: int
    score: float


def decode_entities(text: str, tokens: Sequence[TokenPrediction]) -> list[EntitySpan]:
    """Group tokens into entities: B-X opens, I-X continues X (or opens X after O: lenient at inference).

    Sub-word pieces follow their word's first piece, so an entity never ends inside a word.
    """
    spans: list[tuple[str, int, int, list[float]]] = []
    current: tuple[str, int, int, list[float]] | None = None
    prev_word: int | None = None
    for tok in sorted(tokens, key=lambda t: t.start):
        same_word = tok.word is not None and tok.word == prev_word
        prev_word = tok.word
        if same_word:
            if current is not None:
                current = (current[0], current[1], tok.end, current[3] + [tok.score])
            continue
        prefix, _, typ = tok.label.partition("-")
        if prefix == "I" and current is not None and current[0] == typ:
            current = (typ, current[1], tok.end, current[3] + [tok.score])
            continue
        if current is not None:
            spans.append(current)
            current = None
        if prefix in ("B", "I"):
            current = (typ, tok.start, tok.end, [tok.score])
    if current is not None:
        spans.append(current)
    out = []
    for typ, s, e, scores in spans:
        s, e = _trim(text, s, e)
        if s < e:
            out.append(EntitySpan(text[s:e], typ, s, e, round(float(np.mean(scores)), 4)))
    return out


_LEADING = set("$#@([{\"'“‘«-–—*_~")
_TRAILING = set(",;:)]}\"'”’»-–—*_~!?")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop punctuation at the span's edges ("$AAPL" -> "AAPL", "(Reuters)" -> "Reuters"); a span of
    punctuation only (a lone "$" of a cashtag) disappears. A final "." stays: "Apple Inc." keeps it."""
    while start < end and text[start] in _LEADING:
        start += 1
    while end > start and text[end - 1] in _TRAILING:
        end -= 1
    if not any(ch.isalnum() for ch in text[start:end]):
        return start, start
    return start, end


def merge_windows(windows: Sequence[Sequence[TokenPrediction]]) -> list[TokenPrediction]:
    """Overlapping windows of one text -> one token list; each token comes from the window where it sits most centrally."""
    best: dict[int, tuple[int, TokenPrediction]] = {}
    for toks in windows:
        n = len(toks)
        for j, tok in enumerate(toks):
            centrality = min(j, n - 1 - j)
            kept = best.get(tok.start)
            if kept is None or centrality > kept[0]:
                best[tok.start] = (centrality, tok)
    return [tok for _, tok in sorted(best.values(), key=lambda ct: ct[1].start)]
