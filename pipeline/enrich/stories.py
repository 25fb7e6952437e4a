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

Cost (#18, the biggest host stage at ~0.15 core-ms a post): hashing one Python call per shingle
and checking ~24 LSH candidates one by one on generated posts dominated. Now `assign_many` takes a
batch: the shingles of all its texts are hashed at once (`shingle_hashes`: zlib's CRC-32 of each
shingle's UTF-8, computed by table look-ups on shifted code-point arrays) and reduced to MinHash
values at once (`minhashes`: datasketch's own "affine32" formula and permutation parameters,
vectorised), the same values bit for bit as `MinHash(hashfunc=zlib.crc32).update_batch` gave, so
every decision is unchanged. The live entries' values sit in one [slots, num_perm] store (slots
reused on eviction, halved after a burst), so a post's candidates are checked in one numpy step.
`assign` is `assign_many` of one post. Measured on 2 shared cores: 0.14-0.16 -> 0.06-0.07 CPU-ms
a generated post in batches of 256 (0.10-0.11 one by one), 0.071 -> 0.037 a real tweet or
headline (0.068 one by one); docs/ALERTS.md ("Cost") has the run.

The LSH tables hold store slots, not record ids. Templated posts share a band with
hundreds of live entries, and checking candidates one id at a time made the stage grow with the
index: on generated posts 0.10-0.16 CPU-ms a post with 4,096 live entries, 0.22-0.46 with 16,384
(499 candidates a post). With slots the candidates are one set union and one array: 0.08-0.12
and 0.12-0.20 in the same runs (alternating batches, three runs: ~2x at 16,384), the same
answers (`tests/pipeline/enrich/test_stories.py` checks the tables against a brute-force scan of every live
post). Real tweets and headlines with 30% copies have 2-3 candidates a post: no change there
(within 7%, 0.04 CPU-ms). The store grows without moving entries, so the tables are rewritten
only when it shrinks.

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

import functools
import hashlib
import heapq
import html
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from datasketch import MinHash
from datasketch.minhash import _fmix

from finpulse.pipeline.runtime.settings import StoryConfig

_RT = re.compile(r"^(?:\s*(?:rt|via|qt)\s*@\w+\s*:?\s*)+", re.IGNORECASE)
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")
# syndication boilerplate: a leading all-caps tag ("BREAKING:", "JUST IN:"), a trailing outlet
# ("- Reuters", "| Markets Insider", "(Bloomberg)") and trailing hashtags
_TAG = re.compile(r"^\s*[A-Z][A-Z ]{1,18}:\s+")
_OUTLET = re.compile(r"\s+(?:[-|–—]\s+(?:[A-Z][\w.&']*\s?){1,3}|\([A-Z][\w ]{1,20}\))\s*$")
_HASHTAGS = re.compile(r"(?:\s+#\$?\w+)+\s*$")
_NON_WORD = re.compile(r"[^\w$%.]+|(?<!\d)\.|\.(?!\d)")




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
        s = _OUTLET.sub("", _TAG.sub("", _RT.sub("", s)))
        if "#" in s:  # the hashtag pattern scans every space: skipped where it cannot match
            s = _HASHTAGS.sub("", s)
    s = _MENTION.sub(" ", s)
    # after _NON_WORD the only white space left is " ", so split/join is _SPACES.sub(" ", s).strip()
    return " ".join(_NON_WORD.sub(" ", s.casefold()).split())


def shingles(norm: str, k: int) -> list[bytes]:
    """The distinct k-character shingles of a normalised text as UTF-8 (the whole text if it is not
    longer than k): the set the signatures summarise, kept as the readable definition."""
    if len(norm) <= k:
        return [norm.encode("utf-8")]
    return list({norm[i : i + k].encode("utf-8") for i in range(len(norm) - k + 1)})


@functools.cache
def _crc_terms(k: int) -> tuple[int, np.ndarray]:
    """(crc32 of k zero bytes, [k, 128] table of what ASCII byte v at position j adds to it).

    For messages of one length CRC-32 is affine over GF(2): crc32(m) = crc32(0^k) xor the sum of
    each byte's own term, a term being crc32(v at j, zeros elsewhere) xor crc32(0^k). The table
    is made by zlib itself, so the vectorised hash is zlib's by construction."""
    zero = zlib.crc32(bytes(k))
    terms = [[zlib.crc32(bytes(j) + bytes([v]) + bytes(k - 1 - j)) ^ zero for v in range(128)] for j in range(k)]
    return zero, np.array(terms, np.uint32)


def _window_crc32(text: str, k: int) -> np.ndarray:
    """`zlib.crc32` of the UTF-8 encoding of every k-character window text[i : i + k] (len(text) > k).

    An ASCII character is its own single UTF-8 byte, so a window's CRC is k table look-ups on
    shifted views of the code points, xor-ed: every window at once. The rare windows holding a
    non-ASCII character (UTF-8 bytes of varying count) are hashed by zlib one by one."""
    cp = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    zero, terms = _crc_terms(k)
    n = len(cp) - k + 1
    wide = cp.max() >= 0x80
    ascii_cp = np.minimum(cp, 0x7F) if wide else cp
    crc = terms[0][ascii_cp[:n]] ^ np.uint32(zero)
    for j in range(1, k):
        crc ^= terms[j][ascii_cp[j : j + n]]
    if wide:
        seen = np.concatenate(([0], np.cumsum(cp >= 0x80)))
        for i in np.flatnonzero(seen[k:] > seen[:-k]).tolist():
            crc[i] = zlib.crc32(text[i : i + k].encode("utf-8"))
    return crc


def shingle_hashes(norms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(crc32 of every shingle of every text, concatenated text by text; shingles per text).

    The same values as `zlib.crc32` over `shingles(norm, k)` (what the index hashed one Python
    call per shingle before), but a text's repeated shingles are kept: a minimum does not care.
    The texts are joined and every k-window hashed at once; windows that straddle two texts are
    computed and dropped. A text of at most k characters is one shingle, the whole text, hashed
    by `zlib.crc32` itself (such texts are rare)."""
    lengths = np.fromiter(map(len, norms), np.int64, len(norms))
    counts = np.maximum(lengths - k + 1, 1)
    long = lengths > k
    if len(norms) == 1 and long[0]:  # one post (`assign`): no batch bookkeeping
        return _window_crc32(norms[0], k), counts
    out = np.empty(int(counts.sum()), np.uint32)
    ends = np.cumsum(counts)
    if long.any():
        window = _window_crc32("".join(norms), k)
        offsets = np.cumsum(lengths) - lengths  # where each text starts in the joined text
        first = ends - counts  # where each text's shingles start in `out`
        index = np.arange(len(out)) + np.repeat(offsets - first, counts)  # shingle -> window start
        take = np.repeat(long, counts)
        out[take] = window[index[take]]
    for i in np.flatnonzero(~long).tolist():
        out[ends[i] - 1] = zlib.crc32(norms[i].encode("utf-8"))
    return out, counts


def minhashes(hashes: np.ndarray, counts: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """[texts, num_perm] MinHash values: for each text, the minimum over its shingle hashes of
    each permutation, datasketch's "affine32" scheme (`MinHash.update_batch`): the hash is
    pre-mixed with datasketch's MurmurHash3 finalizer, then a * h + b in uint32, whose
    wrap-around is the scheme's mod 2^32 (numpy arrays wrap silently, as datasketch relies on).

    The products are laid out [num_perm, shingles] and reduced on text boundaries by
    `np.minimum.reduceat`, in blocks of about `_BLOCK` shingles so the intermediate stays in cache."""
    a, b = permutations[0][:, None], permutations[1][:, None]
    mixed = _fmix(hashes, 32)
    ends = np.cumsum(counts)
    starts = ends - counts
    if len(hashes) <= _BLOCK:
        return np.ascontiguousarray(np.minimum.reduceat(a * mixed + b, starts, axis=1).T)
    out = np.empty((len(counts), len(a)), np.uint32)
    i = 0
    while i < len(counts):
        j = max(i + 1, int(np.searchsorted(ends, starts[i] + _BLOCK, side="right")))
        lo, hi = starts[i], ends[j - 1]
        block = a * mixed[lo:hi]
        block += b
        out[i:j] = np.minimum.reduceat(block, starts[i:j] - lo, axis=1).T
        i = j
    return out


_BLOCK = 4096  # shingles per block of `minhashes`: 64 x 4,096 uint32 = 1 MiB


@dataclass
class _Entry:
    ts: float  # published_at, epoch seconds
    story_id: str
    copies: int  # copies_seen given to this post
    digest: bytes  # exact-text key
    slot: int  # row of the index's hash-value store


@dataclass
class _Story:
    first_ts: float
    copies: int
    members: int = 0  # live entries of the story in the index


class StoryIndex:
    """The sliding-window near-duplicate index (one per pipeline worker; see docs/ALERTS.md)."""

    _MIN_SLOTS = 64

    def __init__(self, config: StoryConfig | None = None) -> None:
        cfg = self.config = config or StoryConfig()
        if cfg.num_perm % cfg.bands:
            raise ValueError("num_perm must be a multiple of bands")
        self._tables: list[dict[bytes, list[int]]] = [{} for _ in range(cfg.bands)]  # LSH: band key -> slots
        # datasketch's permutations (a, b) for this seed; the hashing itself is vectorised here
        self._permutations = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, scheme="affine32").permutations
        self._needed = int(np.ceil(cfg.threshold * cfg.num_perm - 1e-9))  # agreeing slots for Jaccard >= threshold
        self._entries: dict[str, _Entry] = {}  # record id -> entry
        # the live entries' MinHash values and times, one row per slot (free slots are reused)
        self._store = np.empty((self._MIN_SLOTS, cfg.num_perm), np.uint32)
        self._times = np.empty(self._MIN_SLOTS, np.float64)
        self._free = list(range(self._MIN_SLOTS - 1, -1, -1))
        self._story_of: list[str] = [""] * self._MIN_SLOTS  # the story of each slot's live entry ("": free)
        self._exact: dict[bytes, list[str]] = {}  # normalised-text digest -> record ids
        self._stories: dict[str, _Story] = {}
        self._heap: list[tuple[float, str]] = []  # (published ts, id): eviction in event-time order
        self._newest = float("-inf")
        self._window = cfg.window.total_seconds()

    # -- the public surface -------------------------------------------------------------------
    def assign(self, record_id: str, text: str, published_at: datetime) -> Assignment:
        """The story of one post, recording it; an id seen before gets its first answer back."""
        return self.assign_many([record_id], [text], [published_at])[0]

    def assign_many(self, ids: Sequence[str], texts: Sequence[str], published: Sequence[datetime]) -> list[Assignment]:
        """The stories of a batch of posts, in order: the same answers and state as `assign` one by
        one (an id repeated in the batch or seen before gets its first answer back), with the
        signatures of the whole batch computed at once."""
        digests, signatures = self._signatures(texts)
        out = []
        for record_id, published_at, digest, hv in zip(ids, published, digests, signatures, strict=True):
            known = self._entries.get(record_id)
            if known is not None:
                out.append(_answer(known.story_id, known.copies))
                continue
            ts = published_at.timestamp()
            keys = self._band_keys(hv)
            story_id = self._match(ts, digest, hv, keys) or record_id
            story = self._stories.get(story_id)
            if story is None:
                story = self._stories[story_id] = _Story(first_ts=ts, copies=0)
            story.copies += 1
            self._add(record_id, _Entry(ts, story_id, story.copies, digest, -1), hv, keys)
            self._evict()
            out.append(_answer(story_id, story.copies))
        return out

    def restore(self, rows: Iterable[tuple[str, datetime, str, str | None, int | None]]) -> int:
        """Rebuild from committed rows (id, published_at, text, story_id, copies_seen), any order.

        Rows without a story (written before de-duplication existed) become their own story.
        Returns how many rows were loaded."""
        loaded = 0
        rows = list(rows)
        for lo in range(0, len(rows), _RESTORE_BATCH):
            batch = rows[lo : lo + _RESTORE_BATCH]
            digests, signatures = self._signatures([text for _, _, text, _, _ in batch])
            for (record_id, published_at, _, story_id, copies_seen), digest, hv in zip(
                batch, digests, signatures, strict=True
            ):
                if record_id in self._entries:
                    continue
                ts = published_at.timestamp()
                sid, copies = story_id or record_id, copies_seen or 1
                story = self._stories.get(sid)
                if story is None:
                    self._stories[sid] = _Story(first_ts=ts, copies=copies)
                else:
                    story.copies = max(story.copies, copies)
                    story.first_ts = min(story.first_ts, ts)
                self._add(record_id, _Entry(ts, sid, copies, digest, -1), hv, self._band_keys(hv))
                loaded += 1
        self._evict()
        return loaded

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def slots(self) -> int:
        """Rows of the hash-value store (live entries and free slots): what its memory follows."""
        return len(self._store)

    @property
    def newest(self) -> datetime | None:
        """Published time of the newest post seen (what a restart's `restore` must reach back from)."""
        from datetime import timezone

        return None if self._newest == float("-inf") else datetime.fromtimestamp(self._newest, timezone.utc)

    # -- internals ------------------------------------------------------------------------------
    def _signatures(self, texts: Sequence[str]) -> tuple[list[bytes], np.ndarray]:
        """(exact-text digests, [texts, num_perm] MinHash values) of a batch of posts."""
        norms = [normalise(t) for t in texts]
        digests = [hashlib.blake2b(n.encode("utf-8"), digest_size=16).digest() for n in norms]
        if not norms:
            return digests, np.empty((0, self.config.num_perm), np.uint32)
        hashes, counts = shingle_hashes(norms, self.config.shingle)
        return digests, minhashes(hashes, counts, self._permutations)

    def _live(self, entry: _Entry, ts: float) -> bool:
        return abs(entry.ts - ts) <= self._window and entry.ts >= self._newest - self._window

    def _match(self, ts: float, digest: bytes, hv: np.ndarray, keys: list[bytes]) -> str | None:
        """The story a post joins (None: a new story). All LSH candidates are checked in one step
        on the store: live (within the window of the post and of the newest post) and agreeing
        on at least `_needed` of the MinHash values."""
        candidates = [rid for rid in self._exact.get(digest, ()) if self._live(self._entries[rid], ts)]
        if not candidates:
            slots = self._candidates(keys)
            if len(slots):
                times = self._times[slots]
                keep = (
                    (np.abs(times - ts) <= self._window)
                    & (times >= self._newest - self._window)
                    & ((self._store[slots] == hv).sum(1) >= self._needed)
                )
                stories = set(map(self._story_of.__getitem__, slots[keep].tolist()))
            else:
                stories = set()
        else:
            stories = {self._entries[rid].story_id for rid in candidates}
        if not stories:
            return None
        return min(stories, key=lambda sid: (self._stories[sid].first_ts, sid))

    def _band_keys(self, hashvalues: np.ndarray) -> list[bytes]:
        raw = hashvalues.tobytes()
        width = len(raw) // self.config.bands
        return [raw[i : i + width] for i in range(0, len(raw), width)]

    def _candidates(self, keys: list[bytes]) -> np.ndarray:
        """Slots of the entries sharing at least one band key with a post (the LSH step: its keys are
        computed once, for this query and for its insert), each once.

        The tables hold slots, not record ids: on templated traffic a post shares a band with hundreds
        of live entries (499 on average once 16,384 generated posts were live), and the candidates
        then cost one C-level set union and one array, not a Python set of ids and a dictionary
        look-up each (which made the stage grow ~3x between 4,096 and 16,384 live entries)."""
        buckets = [bucket for bucket in map(dict.get, self._tables, keys) if bucket]
        if not buckets:
            return np.empty(0, np.intp)
        if len(buckets) == 1:
            return np.array(buckets[0], np.intp)  # a slot is in a bucket once
        found = set(buckets[0]).union(*buckets[1:])
        return np.fromiter(found, np.intp, len(found))

    def _add(self, record_id: str, entry: _Entry, hv: np.ndarray, keys: list[bytes]) -> None:
        if not self._free:
            self._grow()
        entry.slot = slot = self._free.pop()
        self._store[slot] = hv
        self._times[slot] = entry.ts
        self._story_of[slot] = entry.story_id
        self._entries[record_id] = entry
        self._exact.setdefault(entry.digest, []).append(record_id)
        for table, key in zip(self._tables, keys, strict=True):
            table.setdefault(key, []).append(slot)
        self._stories[entry.story_id].members += 1
        heapq.heappush(self._heap, (entry.ts, record_id))
        self._newest = max(self._newest, entry.ts)

    def _grow(self) -> None:
        """Double the store when every slot is in use. The entries keep their slots, so the LSH
        tables are not touched (moving them cost as much as the posts of the doubling)."""
        size = len(self._store)
        store = np.empty((2 * size, self.config.num_perm), np.uint32)
        times = np.empty(2 * size, np.float64)
        store[:size], times[:size] = self._store, self._times
        self._store, self._times = store, times
        self._story_of += [""] * size
        self._free = list(range(2 * size - 1, size - 1, -1))

    def _resize(self, size: int) -> None:
        """Move the live entries to slots 0..n-1 of a store of `size` rows (n <= size), and the LSH
        tables' slots with them (in place: a bucket keeps its order): the shrink after a burst."""
        entries = list(self._entries.values())
        old = np.fromiter((e.slot for e in entries), np.intp, len(entries))
        store = np.empty((size, self.config.num_perm), np.uint32)
        times = np.empty(size, np.float64)
        store[: len(old)], times[: len(old)] = self._store[old], self._times[old]
        moved = [-1] * len(self._store)  # old slot -> new slot
        for slot, e in enumerate(entries):
            moved[e.slot] = slot
            e.slot = slot
        for table in self._tables:
            for bucket in table.values():
                bucket[:] = [moved[s] for s in bucket]
        self._store, self._times = store, times
        self._story_of = [*(e.story_id for e in entries), *([""] * (size - len(entries)))]
        self._free = list(range(size - 1, len(entries) - 1, -1))

    def _evict(self) -> None:
        """Drop entries that can no longer match (older than the window before the newest post);
        the store halves when a quarter of it or less is in use (a quiet week after a busy one)."""
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
            for table, key in zip(self._tables, self._band_keys(self._store[entry.slot]), strict=True):
                bucket = table[key]
                bucket.remove(entry.slot)
                if not bucket:
                    del table[key]
            self._story_of[entry.slot] = ""
            self._free.append(entry.slot)
            story = self._stories[entry.story_id]
            story.members -= 1
            if story.members <= 0:
                del self._stories[entry.story_id]
        if len(self._store) > self._MIN_SLOTS and 4 * len(self._entries) <= len(self._store):
            self._resize(len(self._store) // 2)


_RESTORE_BATCH = 4096  # rows per signature batch of `restore`: bounds its working memory


def _answer(story_id: str, copies: int) -> Assignment:
    return Assignment(story_id, copies, round(1.0 / copies, 6))
