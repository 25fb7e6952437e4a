"""Per-company (target-dependent) sentiment: the span head, its data format and the span <-> token mapping.

Why a span head and not one pass per target: the enrichment engine already runs the shared encoder
once per window for sentiment, topic and NER. The span head reads that pass's final token states,
so a post with five companies costs one encoder pass plus five tiny head evaluations, not six passes.
For each mention it pools the mention's own token states (the span vector), the 5 tokens on each
side of the mention (left and right context) and a target-conditioned attention read of the window:
the query is built from the span vector and the window's mean, and a learned bias per signed token
distance to the mention (initialised to favour nearby words) lets the head look at the words around
its company ("Gold shines; Silver dull"). An MLP turns these pooled vectors into negative / neutral /
positive. The window's mean is deliberately not an MLP input: with it the head mostly repeated the
sentence's sentiment for every company (3 of 23 positive/negative pairs apart on the selection split,
against 6 of 23 without it). The encoder is frozen while training it, so it
cannot change the other tasks' outputs.

The data format is the entity-level JSONL of ../shared/data (see its README): one document per line,
`entities` with character offsets, or null offsets where the entity is found by name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from finpulse.models.data import DataFormatError, read_lines

SPAN_LABELS = ("negative", "neutral", "positive")
# Signed token distance buckets (mention tokens are distance 0): the bias per bucket is learned.
_DIST_EDGES = (1, 2, 3, 4, 6, 9, 14, 21, 32)
N_DIST_BUCKETS = 2 * (len(_DIST_EDGES) + 1) + 1
LOCAL_TOKENS = 5  # left/right context width of the span head


@dataclass(frozen=True)
class EntityLabel:
    text: str
    start: int | None
    end: int | None
    label: int  # index into SPAN_LABELS


@dataclass(frozen=True)
class EntityDoc:
    id: str
    text: str
    entities: tuple[EntityLabel, ...]


def find_by_name(text: str, name: str) -> tuple[int, int] | None:
    """Where an entity given only by name sits in the text: case-sensitive before case-insensitive,
    a whole-word match before a match inside a longer word, first hit wins (the data README's rule)."""
    if not name:
        return None
    for flags in (0, re.IGNORECASE):
        word = re.search(r"(?<!\w)" + re.escape(name) + r"(?!\w)", text, flags)
        if word:
            return word.start(), word.end()
        inner = re.search(re.escape(name), text, flags)
        if inner:
            return inner.start(), inner.end()
    return None


def read_entity_jsonl(path: str | Path) -> list[EntityDoc]:
    """Read the entity-level sentiment JSONL; null offsets are looked up by name (None if absent)."""
    path = Path(path)
    docs: list[EntityDoc] = []
    lines = read_lines(path)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            text = obj["text"]
            ents = []
            for e in obj["entities"]:
                start, end = e.get("start"), e.get("end")
                if start is None or end is None:
                    found = find_by_name(text, e["text"])
                    start, end = found if found else (None, None)
                elif not (0 <= start < end <= len(text)):
                    raise ValueError(f"offsets {start}:{end} outside the text")
                ents.append(EntityLabel(e["text"], start, end, SPAN_LABELS.index(e["sentiment"])))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataFormatError(f"{path}:{lineno}: not an entity-sentiment document: {exc}") from None
        docs.append(EntityDoc(str(obj.get("id", lineno)), text, tuple(ents)))
    if not docs:
        raise DataFormatError(f"{path}: no documents")
    return docs


def span_token_mask(offsets: Sequence[tuple[int, int]], start: int, end: int) -> list[bool]:
    """Which tokens of a window overlap the character span [start, end); special tokens (0, 0) never do."""
    return [e > s and s < end and e > start for s, e in offsets]


def best_window(windows_offsets: Sequence[Sequence[tuple[int, int]]], start: int, end: int) -> int | None:
    """Index of the window that holds the whole span most centrally (the NER rule); None if none holds it."""
    best, best_c = None, -1
    for w, offs in enumerate(windows_offsets):
        idx = [j for j, m in enumerate(span_token_mask(offs, start, end)) if m]
        if not idx:
            continue
        real = [j for j, (s, e) in enumerate(offs) if e > s]
        covered_start = min(offs[j][0] for j in idx)
        covered_end = max(offs[j][1] for j in idx)
        if covered_start > start or covered_end < end:  # the span is cut by the window edge
            if best is None:
                best, best_c = w, -1  # better than nothing when no window holds it all
            continue
        c = min(idx[0] - real[0], real[-1] - idx[-1])
        if c > best_c:
            best, best_c = w, c
    return best


def distance_buckets(span: torch.Tensor) -> torch.Tensor:
    """Signed distance of every token to the nearest mention token, bucketed. span: (N, T) bool -> (N, T) long.

    Bucket 0 = inside the mention; then one bucket per distance band before and after it."""
    n, t = span.shape
    pos = torch.arange(t, device=span.device).expand(n, t)
    big = t + 64
    first = torch.where(span, pos, torch.full_like(pos, big)).min(1, keepdim=True).values
    last = torch.where(span, pos, torch.full_like(pos, -big)).max(1, keepdim=True).values
    before = (first - pos).clamp(min=0)
    after = (pos - last).clamp(min=0)
    edges = torch.tensor(_DIST_EDGES, device=span.device)
    nb = len(_DIST_EDGES) + 1
    b_before = torch.bucketize(before, edges, right=True)  # 0..nb-1 for distance >= 1
    b_after = torch.bucketize(after, edges, right=True)
    out = torch.where(before > 0, 1 + b_before.clamp(max=nb - 1), torch.zeros_like(pos))
    out = torch.where(after > 0, 1 + nb + b_after.clamp(max=nb - 1), out)
    return torch.where(span, torch.zeros_like(pos), out)


def local_masks(span: torch.Tensor, k: int = LOCAL_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """The k tokens just before and just after each mention (left and right context, TD-LSTM style):
    the words that most often carry a target's own sentiment ("Gold shines", "Silver dull")."""
    n, t = span.shape
    pos = torch.arange(t, device=span.device).expand(n, t)
    big = t + 64
    first = torch.where(span, pos, torch.full_like(pos, big)).min(1, keepdim=True).values
    last = torch.where(span, pos, torch.full_like(pos, -big)).max(1, keepdim=True).values
    left = (pos < first) & (pos >= first - k)
    right = (pos > last) & (pos <= last + k)
    return left, right


class SpanSentimentHead(nn.Module):
    """Target-dependent sentiment from one encoder pass's token states (see the module docstring)."""

    def __init__(self, hidden: int, n_labels: int = 3, heads: int = 2, key_dim: int = 64, mlp: int = 256,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.heads, self.key_dim = heads, key_dim
        self.query = nn.Linear(2 * hidden, heads * key_dim)
        self.key = nn.Linear(hidden, heads * key_dim)
        self.dist_bias = nn.Embedding(N_DIST_BUCKETS, heads)
        with torch.no_grad():  # a locality prior: attention starts near the mention, training may widen it
            nb = len(_DIST_EDGES) + 1
            prior = torch.tensor([0.0] + [-0.5 * k for k in range(1, nb + 1)] + [-0.5 * k for k in range(1, nb + 1)])
            self.dist_bias.weight.copy_(prior.unsqueeze(1).expand(N_DIST_BUCKETS, heads))
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear((3 + heads) * hidden, mlp), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp, n_labels))

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
        """hidden (N, T, H): each row the window of one mention; attention_mask (N, T); span (N, T) bool."""
        hidden = self.dropout(hidden.float())
        mask = attention_mask.bool()
        span = span.bool() & mask
        sm = span.unsqueeze(-1).float()
        mm = mask.unsqueeze(-1).float()
        s = (hidden * sm).sum(1) / sm.sum(1).clamp(min=1.0)
        g = (hidden * mm).sum(1) / mm.sum(1).clamp(min=1.0)
        n, t, h = hidden.shape
        q = self.query(torch.cat([s, g], -1)).view(n, self.heads, self.key_dim)
        k = self.key(hidden).view(n, t, self.heads, self.key_dim)
        scores = torch.einsum("nhd,nthd->nht", q, k) / self.key_dim**0.5
        buckets = distance_buckets(span)
        scores = scores + self.dist_bias(buckets).permute(0, 2, 1)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        att = torch.softmax(scores, -1)
        ctx = torch.einsum("nkt,ntd->nkd", att, hidden).reshape(n, self.heads * h)
        left, right = local_masks(span & mask)
        lm, rm = left.unsqueeze(-1).float(), right.unsqueeze(-1).float()
        lc = (hidden * lm).sum(1) / lm.sum(1).clamp(min=1.0)
        rc = (hidden * rm).sum(1) / rm.sum(1).clamp(min=1.0)
        return self.mlp(torch.cat([s, ctx, lc, rc], -1))


def relevance(mentions: Sequence[tuple[int, int, int]], text_length: int) -> list[float]:
    """How much each company is the subject of a text, in (0, 1], the most relevant being 1. Label-free.

    `mentions`: (count, first_start, first_end) per company. Defined as weight = count x exp(-2 x p),
    p the position of the first mention as a share of the text (0 at the start), normalised by the
    largest weight in the text: the company named first and most often scores 1; a company named once
    at the end of a long text next to a company named three times at the start scores about 0.05.
    A heuristic (no relevance labels exist in the training data): headline subjects come first in
    news style, passing mentions late. Never a probability.
    """
    import math

    if not mentions:
        return []
    n = max(1, text_length)
    w = [c * math.exp(-2.0 * min(1.0, s / n)) for c, s, _ in mentions]
    top = max(w)
    return [round(x / top, 4) for x in w]
