"""The columnar entity decoder and ORG-run candidates give exactly what the per-token code gave.

`decode_columns` (models/engine/entities.py) and `Enricher._span_candidates` / `_org_runs` (models/engine/inference.py)
replaced a TokenPrediction per token and per-token loops (issue #18). The per-token code is kept here
and in models/engine/entities.py (`decode_entities`, `merge_windows`) as the reference: the new code must give
the same entities, candidates and span masks on hand-made edge cases, on random windows, and, end to
end, the same `Prediction`s (every field, mentions included) from the real models on real sentences.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import torch

from finpulse.models.engine import inference
from finpulse.models.engine.entities import EntitySpan, TokenPrediction, decode_columns, decode_entities, merge_windows
from finpulse.models.engine.inference import Enricher, _org_runs, _org_tags, _Tokens, _Window
from finpulse.pipeline.runtime.settings import InferenceSettings

LABELS = ("O", "B-ORG", "I-ORG", "B-PER", "I-PER", "B-LOC", "I-LOC")

# One token of a hand-made window: (start, end, word or None for a special token, label, score)
Tok = tuple[int, int, "int | None", str, float]


# -- the per-token code, as it was: the reference ------------------------------------------------------
def reference_window_tokens(offsets, words, label_ids, scores, labels) -> list[TokenPrediction]:
    """A window's TokenPredictions as the engine built them before columns (one per real token)."""
    return [TokenPrediction(s, e, words[j], labels[int(label_ids[j])], float(scores[j]))
            for j, (s, e) in enumerate(offsets) if words[j] is not None and e > s]


def reference_org_runs(offsets, words, best, labels) -> list[tuple[int, int]]:
    """ORG runs of one window, token by token: the loop `_org_runs` replaced (reference only)."""
    runs: list[tuple[int, int]] = []
    cur: list[int] | None = None
    prev_word = None
    for j, (s, e) in enumerate(offsets):
        word = words[j]
        if word is None or e <= s:
            prev_word = None
            continue
        tag = labels[int(best[j])]
        if cur is not None and (word == prev_word or tag == "I-ORG"):
            cur[1] = e
        elif tag in ("B-ORG", "I-ORG"):
            if cur is not None:
                runs.append((cur[0], cur[1]))
            cur = [s, e]
        elif cur is not None:
            runs.append((cur[0], cur[1]))
            cur = None
        prev_word = word
    if cur is not None:
        runs.append((cur[0], cur[1]))
    return runs


def reference_candidates(idx, windows, best, labels, spans, width):
    """`_span_candidates` as it was, per window and per token (reference only). `windows[i]`:
    (text_index, offsets as tuples, words with None); `best`: label ids over the padded batch."""
    rows, masks, meta = [], [], []
    for row, i in enumerate(idx):
        text_index, offsets, words = windows[i]
        cands = reference_org_runs(offsets, words, best[row], labels) if best is not None else []
        if spans is not None and len(offsets) > 2:
            first, last = offsets[1][0], offsets[-2][1]
            cands += [(s, e) for s, e in spans[text_index] if s < last and e > first]
        for s, e in cands:
            m = np.array([b > a and a < e and b > s for a, b in offsets], dtype=bool)
            pos = np.flatnonzero(m)
            if not len(pos):
                continue
            n = len(offsets)
            inside = offsets[pos[0]][0] <= s and offsets[pos[-1]][1] >= e
            rows.append(row)
            masks.append(m)
            meta.append((i, s, e, min(int(pos[0]) - 1, n - 2 - int(pos[-1])), inside))
    if not rows:
        return None
    span = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, m in enumerate(masks):
        span[r, : len(m)] = torch.from_numpy(m)
    return rows, meta, span


# -- columns from hand-made windows ---------------------------------------------------------------------
def columns(windows: list[tuple[int, list[Tok]]], labels=LABELS):
    """(window_text, length, starts, ends, words, label_ids, scores) of windows given as (text, tokens)."""
    toks = [t for _, w in windows for t in w]
    return (np.array([t for t, _ in windows], np.int64), np.array([len(w) for _, w in windows], np.int64),
            np.array([t[0] for t in toks] + [0], np.int64), np.array([t[1] for t in toks] + [0], np.int64),
            np.array([-1 if t[2] is None else t[2] for t in toks] + [-1], np.int64),
            np.array([labels.index(t[3]) for t in toks] + [0], np.int64),
            np.array([t[4] for t in toks] + [0], np.float32))


def reference_decode(texts, windows: list[tuple[int, list[Tok]]], labels=LABELS) -> list[list[EntitySpan]]:
    per_text: list[list[list[TokenPrediction]]] = [[] for _ in texts]
    for t, w in windows:
        per_text[t].append(reference_window_tokens([(s, e) for s, e, *_ in w], [x[2] for x in w],
                                                   [labels.index(x[3]) for x in w],
                                                   np.array([x[4] for x in w], np.float32), labels))
    return [decode_entities(text, merge_windows(ws)) if ws else [] for text, ws in zip(texts, per_text, strict=True)]


def check(texts, windows, labels=LABELS):
    got = decode_columns(texts, *columns(windows, labels), labels)
    assert got == reference_decode(texts, windows, labels)
    return got


CLS, SEP = (0, 0, None, "O", 0.99), (0, 0, None, "O", 0.99)


def test_edge_cases_match_the_reference():
    text = "Tim Cook said $AAPL (Reuters) and Nvidia rose in New York"
    w = [CLS, (0, 3, 0, "I-PER", 0.9), (4, 8, 1, "I-PER", 0.8),  # I- after O opens, then continues
         (9, 13, 2, "O", 0.7), (14, 15, 3, "B-ORG", 0.6), (15, 19, 3, "O", 0.5),  # "$" + piece of its word
         (20, 21, 4, "B-ORG", 0.9), (21, 28, 5, "I-ORG", 0.9), (28, 29, 6, "I-ORG", 0.4),  # "(Reuters)" trimmed
         (30, 33, 7, "I-LOC", 0.3),  # I- of another type opens that type
         (34, 36, 8, "B-ORG", 0.6), (36, 40, 8, "B-PER", 0.2),  # a later piece follows its word's first piece
         (41, 45, 9, "O", 0.9), (46, 48, 10, "O", 0.9), (49, 52, 11, "B-LOC", 0.9), (53, 57, 12, "I-LOC", 0.1),
         SEP]  # an entity at the window's end
    got = check([text], [(0, w)])
    assert [(e.text, e.type) for e in got[0]] == [("Tim Cook", "PER"), ("AAPL", "ORG"), ("Reuters", "ORG"),
                                                  ("and", "LOC"), ("Nvidia", "ORG"), ("New York", "LOC")]
    # punctuation only: gone; a piece of a word whose first piece was O stays O; empty texts; no windows
    check(["$ (", "ab", "", "x"], [(0, [CLS, (0, 1, 0, "B-ORG", 0.5), (2, 3, 1, "I-ORG", 0.5), SEP]),
                                  (1, [CLS, (0, 1, 0, "O", 0.5), (1, 2, 0, "B-ORG", 0.5), SEP]),
                                  (2, [CLS, SEP])])
    check([], [])


def test_long_entities_and_multi_window_texts_match_the_reference():
    text = " ".join(f"w{k}" for k in range(40))
    toks: list[Tok] = [(3 * k, 3 * k + 2, k, "B-ORG" if k == 0 else "I-ORG", 0.1 + 0.017 * k) for k in range(10)]
    check([text], [(0, [CLS, *toks, SEP])])  # a 10-token entity: the mean over more than 8 scores
    first = [CLS, *[(3 * k, 3 * k + 2, k, "B-ORG" if k % 4 == 0 else "I-ORG", 0.5 + 0.01 * k) for k in range(12)], SEP]
    second = [CLS, *[(3 * k, 3 * k + 2, k - 8, "B-PER" if k % 3 == 0 else "O", 0.6) for k in range(8, 20)], SEP]
    check([text, "Apple"], [(0, first), (0, second), (1, [CLS, (0, 5, 0, "B-ORG", 0.9), SEP])])


def test_out_of_order_tokens_take_the_merge_path():
    text = "Apple Nvidia"
    check([text], [(0, [CLS, (6, 12, 1, "B-ORG", 0.9), (0, 5, 0, "B-ORG", 0.8), SEP])])
    check([text], [(0, [CLS, (0, 5, 0, "B-ORG", 0.9), (0, 5, 1, "I-ORG", 0.8), (6, 12, 2, "B-PER", 0.7), SEP])])


def random_windows(rng: random.Random, n_texts: int):
    texts, windows = [], []
    for t in range(n_texts):
        text = "".join(rng.choice("ab$(.- ") for _ in range(rng.randint(0, 60)))
        texts.append(text)
        for _ in range(rng.choice([0, 1, 1, 1, 1, 2, 3])):
            toks: list[Tok] = [CLS]
            pos, word = 0, 0
            while pos < len(text) and len(toks) < 40:
                step = min(rng.randint(0, 3), len(text) - pos)
                word += rng.random() < 0.6
                tok: Tok = (pos, pos + step, None if rng.random() < 0.03 else word, rng.choice(LABELS),
                            rng.random())
                toks.append(tok)
                pos += step + (rng.random() < 0.5)
            if rng.random() < 0.05 and len(toks) > 3:  # now and then a token out of order
                toks[1], toks[2] = toks[2], toks[1]
            windows.append((t, [*toks, SEP]))
    return texts, windows


def test_random_windows_match_the_reference():
    rng = random.Random(7)
    for _ in range(200):
        check(*random_windows(rng, rng.randint(1, 12)))


def tokens_of(texts, windows) -> _Tokens:
    window_text, length, starts, ends, words, *_ = columns(windows)
    first = np.zeros(len(length), np.int64)
    np.cumsum(length[:-1], out=first[1:])
    return _Tokens([_Window(int(t), [0] * int(n)) for t, n in zip(window_text, length, strict=True)],
                   window_text, first, length, starts, ends, words)


def test_org_runs_and_candidates_match_the_reference_on_random_windows():
    rng = random.Random(11)
    org = _org_tags(LABELS)
    for _ in range(200):
        texts, windows = random_windows(rng, rng.randint(1, 8))
        if not windows:
            continue
        tokens = tokens_of(texts, windows)
        idx = rng.sample(range(len(windows)), rng.randint(1, len(windows)))
        width = max(len(windows[i][1]) for i in idx) + rng.randint(0, 2)
        at = tokens.gather(idx, width)
        best = np.array([[LABELS.index(windows[i][1][j][3]) if j < len(windows[i][1]) else rng.randrange(len(LABELS))
                          for j in range(width)] for i in idx], np.int64)
        spans = [[(s, s + rng.randint(0, 6)) for s in rng.sample(range(70), 3)] for _ in texts]
        old = [(t, [(s, e) for s, e, *_ in w], [x[2] for x in w]) for t, w in windows]
        for given in (None, spans):
            got = Enricher._span_candidates(idx, tokens, at, best, org, given)
            want = reference_candidates(idx, old, best, LABELS, given, width)
            assert (got is None) == (want is None)
            if got is not None:
                assert got[0] == want[0] and got[1] == want[1] and torch.equal(got[2], want[2])
        for row, i in enumerate(idx):
            runs = _org_runs(tokens.starts[at[row : row + 1]], tokens.ends[at[row : row + 1]],
                             tokens.words[at[row : row + 1]], best[row : row + 1], *org)
            want = reference_org_runs(old[i][1], old[i][2], best[row], LABELS)
            assert list(zip(runs[1], runs[2], strict=True)) == want


# -- the real models on real sentences -------------------------------------------------------------------
def real_texts(data: Path) -> list[str]:
    fin = [json.loads(line)["text"] for line in (data / "finentity_train.jsonl").open(encoding="utf-8")]
    sent = [json.loads(line)["text"] for line in (data / "sentfin_entity_train.jsonl").open(encoding="utf-8")]
    with (data / "tfns_sentiment_train.csv").open(encoding="utf-8", newline="") as f:
        tweets = [r["text"] for r in csv.DictReader(f)]
    rng = random.Random(3)
    longs = [" ".join(rng.sample(fin, 30)) for _ in range(3)]  # several windows each
    return rng.sample(fin, 150) + rng.sample(sent, 150) + rng.sample(tweets, 150) + longs + ["", "$"]


def test_real_predictions_match_the_per_token_code(monkeypatch, real_data):
    """Every field of every Prediction (entities, mentions and their scores) from the real models on
    FinEntity, SEntFiN and TFNS texts: the columnar path against the per-token reference, which is
    swapped in for `decode_columns` and `_span_candidates` and reads the tokeniser's own lists."""
    from finpulse.models.artifacts.registry import DEFAULT_REGISTRY, load_registry
    from finpulse.pipeline.enrich.handler import company_spans

    enricher = Enricher(load_registry(DEFAULT_REGISTRY), InferenceSettings(), mention_finder=company_spans)
    texts = real_texts(real_data.path("finentity_train.jsonl", "sentfin_entity_train.jsonl",
                                      "tfns_sentiment_train.csv").parent)
    fast = enricher.predict(texts)
    group = next(g for g in enricher.groups if "ner" in g.tasks)
    tok = group.loaded.tokenizer
    old_windows: list = []

    def old_style(chunk):  # the tokeniser's offsets and word ids as the engine held them before columns
        enc = tok([t[: enricher.settings.max_chars] for t in chunk], truncation=True, max_length=group.max_length,
                  stride=enricher.settings.stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        return [(int(enc["overflow_to_sample_mapping"][i]), [tuple(o) for o in enc["offset_mapping"][i]],
                 enc.word_ids(i)) for i in range(len(enc["input_ids"]))]

    labels = group.loaded.model.tasks["ner"].labels
    tokenize = Enricher._tokenize

    def tokenize_both(self, chunk):
        old_windows[:] = old_style(chunk)
        return tokenize(self, chunk)

    def decode(chunk, window_text, length, starts, ends, words, label_ids, scores, labels):
        assert [w[0] for w in old_windows] == window_text.tolist()
        per_text: list[list[list[TokenPrediction]]] = [[] for _ in chunk]
        at = 0
        for t, offsets, wids in old_windows:
            n = len(offsets)
            per_text[t].append(reference_window_tokens(offsets, wids, label_ids[at : at + n], scores[at : at + n],
                                                       labels))
            at += n
        return [decode_entities(text, merge_windows(ws)) if ws else []
                for text, ws in zip(chunk, per_text, strict=True)]

    def candidates(idx, tokens, at, best, org, spans):
        return reference_candidates(idx, old_windows, best, labels, spans, at.shape[1])

    assert len(texts) <= enricher.settings.chunk_texts  # one chunk: old_windows is the chunk being decoded
    monkeypatch.setattr(Enricher, "_tokenize", tokenize_both)
    monkeypatch.setattr(inference, "decode_columns", decode)
    monkeypatch.setattr(Enricher, "_span_candidates", staticmethod(candidates))
    slow = enricher.predict(texts)
    assert sum(len(p.entities) for p in fast) > 300 and sum(len(p.mentions or []) for p in fast) > 300
    assert fast == slow
