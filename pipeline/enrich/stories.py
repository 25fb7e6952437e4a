"""Story de-duplication and novelty: which earlier post is this one a copy of? Pure, no Beam, no lake.

Real feeds repeat themselves: retweets ("RT @user: ..."), quoted copies, templated spam and the
same wire story syndicated with small edits. Counting every copy as fresh evidence let one
retweeted rap lyric raise a critical alert. Each post therefore gets

* `story_id`: the id of the first report of its near-duplicate story (its own id if it is new),
* `copies_seen`: how many posts of that story have been seen so far, this one included,
* `novelty`: 1 / copies_seen (1.0 for a first report, 0.5 for the first copy, ...).

How: the text is normalised (retweet prefixes, URLs, @mentions, HTML entities, case and
punctuation dropped), cut into character 5-gram shingles and summarised by a 64-permutation
MinHash (`datasketch`); an LSH index over 16 bands (our 20 lines: each band key is computed once
per post, where MinHashLSH computes them for the query and again for the insert) proposes
candidates, which are kept when their estimated Jaccard similarity reaches `threshold` and they
were published within `window` of the post. An exact-text table catches identical copies before
the LSH. Among matching candidates the story whose first report is earliest (then smallest story
id) wins, so the choice does not depend on the order of the LSH's sets.

Determinism and durability. Assignment depends only on the sequence of posts offered, so the
same feed in the same order gives the same ids whether streamed or backfilled. An id offered a
second time (a replayed bundle, a Kafka redelivery) gets its first assignment back unchanged.
State is bounded by event time: entries older than `window` before the newest post seen are
evicted and never match. Everything the index holds can be rebuilt from rows that carry
(id, published_at, text, story_id, copies_seen) — the lake's committed rows — with `restore`,
so a restarted stream resumes with exactly the state it had after its last commit, and replays
the uncommitted rest to the same ids (the Beam glue is in `pipeline/jobs/transforms.py`).
"""

from __future__ import annotations

import hashlib
import heapq
import html
import re
import unicodedata
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from datasketch import MinHash

_RT = re.compile(r"^(?:\s*(?:rt|via|qt)\s*@\w+\s*:?\s*)+", re.IGNORECASE)
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")
# syndication boilerplate: a leading all-caps tag ("BREAKING:", "JUST IN:"), a trailing outlet
# ("- Reuters", "| Markets Insider", "(Bloomberg)") and trailing hashtags
_TAG = re.compile(r"^\s*[A-Z][A-Z ]{1,18}:\s+")
_OUTLET = re.compile(r"\s+(?:[-|–—]\s+(?:[A-Z][\w.&']*\s?){1,3}|\([A-Z][\w ]{1,20}\))\s*$")
_HASHTAGS = re.compile(r"(?:\s+#\$?\w+)+\s*$")
_NON_WORD = re.compile(r"[^\w$%.]+|(?<!\d)\.|\.(?!\d)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class StoryConfig:
    """Tuned on copies made from real headlines (docs/ALERTS.md, "Real text")."""

    window: timedelta = timedelta(days=3)  # a copy must be published within this of a post it matches
    threshold: float = 0.6  # estimated Jaccard of the 5-gram shingle sets
    num_perm: int = 64  # MinHash permutations: 64 keeps hashing cheap; the estimate's sd is <= 0.0625
    bands: int = (
        16  # LSH bands of num_perm / bands rows: a pair at Jaccard 0.6 is a candidate with p 0.9, at 0.3 with p 0.12
    )
    shingle: int = 5  # characters per shingle: robust to single-word edits in short posts
    seed: int = 1


@dataclass(frozen=True)
class Assignment:
    story_id: str
    copies_seen: int
    novelty: float


def normalise(text: str) -> str:
    """The words a copy keeps: no retweet prefix, links, mentions, entities, case or punctuation."""
    s = unicodedata.normalize("NFKC", html.unescape(text))
    s = _RT.sub("", s)
    s = _URL.sub(" ", s).strip()
    for _ in range(2):  # "RT @a: BREAKING: text - Reuters #stocks"
        s = _HASHTAGS.sub("", _OUTLET.sub("", _TAG.sub("", _RT.sub("", s))))
    s = _MENTION.sub(" ", s)
    s = _NON_WORD.sub(" ", s.casefold())
    return _SPACES.sub(" ", s).strip()


def shingles(norm: str, k: int) -> list[bytes]:
    if len(norm) <= k:
        return [norm.encode("utf-8")]
    return list({norm[i : i + k].encode("utf-8") for i in range(len(norm) - k + 1)})


@dataclass
class _Entry:
    ts: float  # published_at, epoch seconds
    story_id: str
    copies: int  # copies_seen given to this post
    digest: bytes  # exact-text key
    hashvalues: np.ndarray


@dataclass
class _Story:
    first_ts: float
    copies: int
    members: int = 0  # live entries of the story in the index


class StoryIndex:
    """The sliding-window near-duplicate index (one per pipeline worker; see docs/ALERTS.md)."""

    def __init__(self, config: StoryConfig | None = None) -> None:
        cfg = self.config = config or StoryConfig()
        if cfg.num_perm % cfg.bands:
            raise ValueError("num_perm must be a multiple of bands")
        self._tables: list[dict[bytes, list[str]]] = [{} for _ in range(cfg.bands)]  # LSH: band -> ids
        # One reusable sketch (permutations computed once; clear() per post) with a C-speed hash:
        # zlib.crc32 instead of datasketch's default SHA-1 wrapper cut de-dup time per post ~3x.
        self._probe = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=zlib.crc32)
        self._entries: dict[str, _Entry] = {}  # record id -> entry
        self._exact: dict[bytes, list[str]] = {}  # normalised-text digest -> record ids
        self._stories: dict[str, _Story] = {}
        self._heap: list[tuple[float, str]] = []  # (published ts, id): eviction in event-time order
        self._newest = float("-inf")
        self._window = cfg.window.total_seconds()

    # -- the public surface -------------------------------------------------------------------
    def assign(self, record_id: str, text: str, published_at: datetime) -> Assignment:
        """The story of one post, recording it; an id seen before gets its first answer back."""
        known = self._entries.get(record_id)
        if known is not None:
            return _answer(known.story_id, known.copies)
        ts = published_at.timestamp()
        digest, minhash = self._signature(text)
        story_id = self._match(ts, digest, minhash) or record_id
        story = self._stories.get(story_id)
        if story is None:
            story = self._stories[story_id] = _Story(first_ts=ts, copies=0)
        story.copies += 1
        self._add(record_id, _Entry(ts, story_id, story.copies, digest, minhash.hashvalues.copy()), minhash)
        self._evict()
        return _answer(story_id, story.copies)

    def restore(self, rows: Iterable[tuple[str, datetime, str, str | None, int | None]]) -> int:
        """Rebuild from committed rows (id, published_at, text, story_id, copies_seen), any order.

        Rows without a story (written before de-duplication existed) become their own story.
        Returns how many rows were loaded."""
        loaded = 0
        for record_id, published_at, text, story_id, copies_seen in rows:
            if record_id in self._entries:
                continue
            ts = published_at.timestamp()
            digest, minhash = self._signature(text)
            sid, copies = story_id or record_id, copies_seen or 1
            story = self._stories.get(sid)
            if story is None:
                self._stories[sid] = _Story(first_ts=ts, copies=copies)
            else:
                story.copies = max(story.copies, copies)
                story.first_ts = min(story.first_ts, ts)
            self._add(record_id, _Entry(ts, sid, copies, digest, minhash.hashvalues.copy()), minhash)
            loaded += 1
        self._evict()
        return loaded

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def newest(self) -> datetime | None:
        """Published time of the newest post seen (what a restart's `restore` must reach back from)."""
        from datetime import timezone

        return None if self._newest == float("-inf") else datetime.fromtimestamp(self._newest, timezone.utc)

    # -- internals ------------------------------------------------------------------------------
    def _signature(self, text: str) -> tuple[bytes, MinHash]:
        """(exact-text digest, MinHash) of a post. The MinHash is the shared probe: its values are
        copied into the entry, and the LSH keeps only band keys, so reusing it is safe."""
        norm = normalise(text)
        m = self._probe
        m.clear()
        m.update_batch(shingles(norm, self.config.shingle))
        return hashlib.blake2b(norm.encode("utf-8"), digest_size=16).digest(), m

    def _live(self, entry: _Entry, ts: float) -> bool:
        return abs(entry.ts - ts) <= self._window and entry.ts >= self._newest - self._window

    def _match(self, ts: float, digest: bytes, minhash: MinHash) -> str | None:
        candidates = [rid for rid in self._exact.get(digest, ()) if self._live(self._entries[rid], ts)]
        if not candidates:
            for rid in self._candidates(minhash.hashvalues):
                entry = self._entries[rid]
                if self._live(entry, ts) and np.count_nonzero(entry.hashvalues == minhash.hashvalues) >= self._needed:
                    candidates.append(rid)
        if not candidates:
            return None
        stories = {self._entries[rid].story_id for rid in candidates}
        return min(stories, key=lambda sid: (self._stories[sid].first_ts, sid))

    @property
    def _needed(self) -> int:
        """Agreeing MinHash slots for an estimated Jaccard >= threshold."""
        return int(np.ceil(self.config.threshold * self.config.num_perm - 1e-9))

    def _band_keys(self, hashvalues: np.ndarray) -> list[bytes]:
        raw = hashvalues.tobytes()
        width = len(raw) // self.config.bands
        return [raw[i : i + width] for i in range(0, len(raw), width)]

    def _candidates(self, hashvalues: np.ndarray) -> set[str]:
        """Ids sharing at least one band with the signature (the LSH step: each band key computed once)."""
        out: set[str] = set()
        for table, key in zip(self._tables, self._band_keys(hashvalues), strict=True):
            ids = table.get(key)
            if ids:
                out.update(ids)
        return out

    def _add(self, record_id: str, entry: _Entry, minhash: MinHash) -> None:
        self._entries[record_id] = entry
        self._exact.setdefault(entry.digest, []).append(record_id)
        for table, key in zip(self._tables, self._band_keys(entry.hashvalues), strict=True):
            table.setdefault(key, []).append(record_id)
        self._stories[entry.story_id].members += 1
        heapq.heappush(self._heap, (entry.ts, record_id))
        self._newest = max(self._newest, entry.ts)

    def _evict(self) -> None:
        """Drop entries that can no longer match (older than the window before the newest post)."""
        horizon = self._newest - self._window
        while self._heap and self._heap[0][0] < horizon:
            _, rid = heapq.heappop(self._heap)
            entry = self._entries.pop(rid, None)
            if entry is None:
                continue
            ids = self._exact[entry.digest]
            ids.remove(rid)
            if not ids:
                del self._exact[entry.digest]
            for table, key in zip(self._tables, self._band_keys(entry.hashvalues), strict=True):
                bucket = table[key]
                bucket.remove(rid)
                if not bucket:
                    del table[key]
            story = self._stories[entry.story_id]
            story.members -= 1
            if story.members <= 0:
                del self._stories[entry.story_id]


def _answer(story_id: str, copies: int) -> Assignment:
    return Assignment(story_id, copies, round(1.0 / copies, 6))
