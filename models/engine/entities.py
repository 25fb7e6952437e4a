"""Token-level IOB2 predictions -> character-span entities on the original text. Pure (numpy only).

`merge_windows` and `decode_entities` are the readable rule, one TokenPrediction per token: the engine
runs them for texts longer than one window. `decode_columns` gives the same entities from flat token
arrays without an object per token, for every text of a chunk at once (tests/pipeline/enrich/test_entity_columns.py
holds it to the per-token rule on edge cases, random windows and the real models)."""

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


_B, _I = 1, 2  # prefix codes of a tag table; anything else (O) is 0


def tag_table(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per label id: the IOB2 prefix code (B 1, I 2, else 0) and the entity type's index in the returned
    type list (-1 where the label opens nothing), as `decode_entities` reads a label with `partition("-")`."""
    prefix = np.zeros(len(labels), np.int8)
    type_id = np.full(len(labels), -1, np.int64)
    types: list[str] = []
    for k, label in enumerate(labels):
        head, _, typ = label.partition("-")
        if head in ("B", "I"):
            prefix[k] = _B if head == "B" else _I
            if typ not in types:
                types.append(typ)
            type_id[k] = types.index(typ)
    return prefix, type_id, types


def decode_columns(texts: Sequence[str], window_text: np.ndarray, length: np.ndarray, starts: np.ndarray,
                   ends: np.ndarray, words: np.ndarray, label_ids: np.ndarray, scores: np.ndarray,
                   labels: Sequence[str]) -> list[list[EntitySpan]]:
    """Entities of every text of a chunk at once, from flat token columns: `merge_windows` then
    `decode_entities` per text, with the same results, but without a Python object per token.

    Window k (of text `window_text[k]`) holds the `length[k]` tokens that follow window k-1's in the
    columns: character `starts`/`ends`, pre-tokeniser `words` (-1 for special tokens), the head's best
    label id and that label's probability. Why columns: a post has ~30 tokens and ~1 entity, and building
    a TokenPrediction per token was most of the host-side entity cost (issue #18).

    A text with one window whose tokens come in strictly increasing start order (nearly every post) is
    decoded by array operations: `decode_entities`' state (the open entity's type) after a word's first
    piece depends only on that piece's label and the previous first piece's, so each first piece that
    does not continue the previous one starts a segment, and a segment whose first label is B-X or I-X
    is an entity X spanning all its tokens. Only entities become Python objects. Texts with several
    windows (longer than the encoder's window) go through `merge_windows` and `decode_entities`.
    """
    out: list[list[EntitySpan]] = [[] for _ in texts]
    total = int(length.sum())
    if not total:
        return out
    prefix, type_id, types = tag_table(labels)
    per_text = np.bincount(window_text, minlength=len(texts))
    tok_win = np.repeat(np.arange(len(length)), length)
    valid = (words[:total] >= 0) & (ends[:total] > starts[:total])
    fast = per_text == 1
    v = np.flatnonzero(valid & fast[window_text[tok_win]])
    vw = tok_win[v]
    same = vw[1:] == vw[:-1]
    unsorted = same & (starts[v[1:]] <= starts[v[:-1]])
    if unsorted.any():  # merge_windows would reorder (or drop) these tokens: leave them to it
        fast[window_text[vw[1:][unsorted]]] = False
        v = np.flatnonzero(valid & fast[window_text[tok_win]])
        vw = tok_win[v]
        same = vw[1:] == vw[:-1]
    if len(v):
        _decode_fast(texts, out, window_text[vw], v, same, starts, ends, words, label_ids, scores,
                     prefix, type_id, types)
    slow = np.flatnonzero(~fast & (per_text > 0))
    if len(slow):
        first = np.zeros(len(length), np.int64)
        np.cumsum(length[:-1], out=first[1:])
        wanted = set(slow.tolist())
        windows: dict[int, list[list[TokenPrediction]]] = {t: [] for t in wanted}
        for k, t in enumerate(window_text.tolist()):
            if t in wanted:
                a = int(first[k])
                j = a + np.flatnonzero(valid[a : a + int(length[k])])
                windows[t].append([TokenPrediction(s, e, w, labels[lab], sc) for s, e, w, lab, sc in zip(
                    starts[j].tolist(), ends[j].tolist(), words[j].tolist(), label_ids[j].tolist(),
                    scores[j].astype(np.float64).tolist(), strict=True)])
        for t, toks in windows.items():
            out[t] = decode_entities(texts[t], merge_windows(toks))
    return out


def _decode_fast(texts: Sequence[str], out: list[list[EntitySpan]], text_of: np.ndarray, v: np.ndarray,
                 same: np.ndarray, starts: np.ndarray, ends: np.ndarray, words: np.ndarray,
                 label_ids: np.ndarray, scores: np.ndarray, prefix: np.ndarray, type_id: np.ndarray,
                 types: list[str]) -> None:
    """`decode_columns`' array path over the valid tokens `v` (in order; `same`: token k+1 is in token k's window)."""
    sub = np.zeros(len(v), bool)  # a later piece of the previous token's word
    wd = words[v]
    sub[1:] = same & (wd[1:] == wd[:-1])
    lab = label_ids[v]
    heads = np.flatnonzero(~sub)
    ht = type_id[lab[heads]]
    prev = np.full(len(heads), -1, np.int64)  # the type open before each head; none at a window's start
    prev[1:] = np.where(same[heads[1:] - 1], ht[:-1], -1)
    cont = (prefix[lab[heads]] == _I) & (prev == ht)
    seg_start = heads[~cont]
    seg_type = ht[~cont]
    seg_end = np.empty_like(seg_start)  # inclusive: the token before the next segment
    seg_end[:-1] = seg_start[1:] - 1
    seg_end[-1] = len(v) - 1
    ent = np.flatnonzero(seg_type >= 0)
    if not len(ent):
        return
    # np.mean of a list is add.reduce / n; reduceat sums each segment with the same reduction
    sums = np.add.reduceat(scores[v].astype(np.float64), seg_start)[ent]
    means = (sums / (seg_end[ent] - seg_start[ent] + 1)).tolist()
    for t, s, e, typ, m in zip(text_of[seg_start[ent]].tolist(), starts[v[seg_start[ent]]].tolist(),
                               ends[v[seg_end[ent]]].tolist(), seg_type[ent].tolist(), means, strict=True):
        text = texts[t]
        s, e = _trim(text, s, e)
        if s < e:
            out[t].append(EntitySpan(text[s:e], types[typ], s, e, round(m, 4)))
