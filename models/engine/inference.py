"""The enrichment engine: texts in, sentiment + topic + entities out, in input order.

Fast by design: one tokenisation per encoder, one encoder pass serving every task that shares
it, windows sorted by length and batched by a padded-token budget, dynamic padding, inference
mode. Long texts are split into overlapping windows (`max_length` tokens, `stride` overlap):
classification averages window probabilities weighted by window length; NER keeps each token's
prediction from the window where it sits most centrally. Only the first `max_chars` characters
are analysed (default 20,000, about 40 windows), so a huge text costs bounded time.

Per-company sentiment (a span head, models/spans.py) reads the same pass's token states: in each
batch, every ORG run the NER head finds in a window and every span the caller asks for (cashtags,
gazetteer names: `mention_finder`, or explicit `spans`) is scored from that window, and a mention
takes the score of the window where it sits most centrally. In texts that name several companies,
a registry with an `entity_target` model then re-reads each mention with the company marked in the
input (models/engine/targets.py): a second, short pass of a small model, only where the span head is weakest.

Precision (`pick_precision`): `auto` is bf16 on CUDA and on CPUs with native bf16, else fp32; `int8`
(asked for, CPU only) swaps every encoder for a static-int8 ONNX Runtime build (models/engine/int8.py), whose
labels do not depend on the batch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch

from finpulse.models.artifacts.artifact import LoadedModel, ModelLoadError, load_artifact
from finpulse.models.artifacts.registry import ModelRegistry
from finpulse.models.engine import int8
from finpulse.models.engine.batching import plan_batches
from finpulse.models.engine.device import gpu_token_budget, to_device
from finpulse.models.engine.entities import EntitySpan, decode_columns
from finpulse.models.engine.targets import MIN_ORG_SCORE, check_policy, mark_target, pick_targets
from finpulse.models.tasks import TaskKind
from finpulse.pipeline.runtime.settings import InferenceSettings
from finpulse.pipeline.runtime.stages import stage

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "int8")
Precision = Literal["bf16", "fp32", "int8"]
NATIVE_BF16 = frozenset({"amx_bf16", "avx512_bf16"})  # /proc/cpuinfo flags: bf16 matrix products in hardware



DEFAULT_SETTINGS = InferenceSettings()


@dataclass(frozen=True)
class MentionSentiment:
    """Sentiment toward one mention (an ORG entity or a span the caller asked for) of a text."""

    text: str
    start: int
    end: int
    sentiment: str
    score: float  # P(positive) - P(negative)
    probs: dict[str, float]
    origin: str  # "ner" (an ORG entity), "given" (a caller's span) or "post" (not scorable: the post's sentiment)
    scorer: str = "span"  # "span" (the shared pass's span head) or "target" (the target-marked second pass)


@dataclass
class Prediction:
    sentiment: str
    sentiment_score: float
    sentiment_probs: dict[str, float]
    topic: str
    topic_score: float
    entities: list[EntitySpan] = field(default_factory=list)
    mentions: list[MentionSentiment] | None = None  # None: the registry has no entity_sentiment head


@dataclass
class _Window:
    text_index: int
    input_ids: list[int]


@dataclass
class _Tokens:
    """One chunk's windows for one encoder, and every token of them in flat columns (window k's tokens
    are `first[k]` to `first[k] + length[k]`), so that entity decoding and mention candidates run as
    array operations over whole batches instead of Python loops over tokens (issue #18). One extra row
    at the end (`pad`: offsets (0, 0), word -1, like a special token) is where padding positions point."""

    windows: list[_Window]
    window_text: np.ndarray  # (windows,) the text each window belongs to
    first: np.ndarray  # (windows,)
    length: np.ndarray  # (windows,) tokens, special tokens included
    starts: np.ndarray  # (tokens + 1,) character offsets of each token; (0, 0) for special tokens
    ends: np.ndarray
    words: np.ndarray  # (tokens + 1,) pre-tokeniser word index; -1 for special tokens

    @property
    def pad(self) -> int:
        return len(self.words) - 1

    def gather(self, idx: list[int], width: int) -> np.ndarray:
        """(len(idx), width): the column index of each position of a padded batch of these windows
        (`pad` past a window's end)."""
        pos = np.arange(width)
        lengths = self.length[idx]
        return np.where(pos < lengths[:, None], self.first[idx][:, None] + pos, self.pad)


# One scored candidate: (start, end, probs, centrality, fully inside the window)
_SpanScore = tuple[int, int, np.ndarray, int, bool]


_Candidate = tuple[int, int, int, int, bool]  # window, start, end, centrality, inside


class _EncoderGroup:
    """One loaded artifact and the tasks it serves."""

    def __init__(self, loaded: LoadedModel, tasks: list[str], max_length: int, token_budget: int,
                 stride: int = 0) -> None:
        self.loaded = loaded
        self.tasks = tasks
        self.max_length = max_length
        self.token_budget = token_budget
        self.windows_tokenizer = windows_tokenizer(loaded.tokenizer, max_length, stride)


def windows_tokenizer(tokenizer: Any, max_length: int, stride: int) -> Any:
    """The Rust tokenizer (`tokenizers.Tokenizer`) behind a fast Hugging Face tokenizer, its own copy,
    set once to cut texts into windows of `max_length` tokens overlapping by `stride`, unpadded.

    Why not call the Hugging Face wrapper: it converts every encoding into Python lists of ids,
    masks, type ids and offsets, then we read the offsets and word ids back out of them; reading
    the encodings directly did the same work in 0.066 instead of 0.083-0.090 core-ms a post
    (the bare Rust tokenizer: 0.059). A copy, because the wrapper sets truncation on its backend
    at every call; this one is configured once and never changed."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    tok.enable_truncation(max_length, stride=stride)
    tok.no_padding()
    return tok


class Enricher:
    def __init__(self, registry: ModelRegistry, settings: InferenceSettings = DEFAULT_SETTINGS,
                 mention_finder: Callable[[str], Sequence[tuple[int, int]]] | None = None) -> None:
        """`mention_finder(text)` gives extra character spans to score per-company sentiment for (e.g.
        cashtags); ORG entities are always scored when the registry has an entity_sentiment head."""
        self.mention_finder = mention_finder
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.registry = registry
        self.precision = pick_precision(settings.precision, settings.device, cpu_flags())
        self.bf16 = self.precision == "bf16"
        on_gpu = torch.device(settings.device).type == "cuda"
        # On CUDA the weights themselves go to bf16: autocast's per-op casts cost more than they save
        # for a small encoder there. On CPU autocast keeps the fp32 weights that oneDNN's bf16 path wants.
        self.autocast = self.bf16 and not on_gpu
        self.model_version = registry.model_version
        by_artifact: dict[str, list[str]] = defaultdict(list)
        for name, tm in registry.tasks.items():
            by_artifact[str(tm.artifact_path)].append(name)
        self.groups: list[_EncoderGroup] = []
        for path, tasks in by_artifact.items():
            loaded = load_artifact(path, settings.device)
            for name in tasks:
                tm = registry.task(name)
                if name not in loaded.model.tasks:
                    raise ModelLoadError(f"artifact {path} has no '{name}' head; fix the registry")
                if list(loaded.model.tasks[name].labels) != tm.labels:
                    raise ModelLoadError(f"registry labels for '{name}' differ from artifact {path}; fix the registry")
            max_len = min(registry.task(t).max_length for t in tasks)
            budget = settings.token_budget
            if on_gpu:  # sized from free GPU memory, never below the settings
                if self.bf16:
                    loaded.model.to(torch.bfloat16)
                budget = max(budget, gpu_token_budget(loaded.model.encoder.config, torch.device(settings.device),
                                                      max_len, self.bf16))
            self.groups.append(_EncoderGroup(loaded, tasks, max_len, budget, settings.stride))
        self.target: _EncoderGroup | None = None
        # an explicit setting, else the registry's (the profile's) choice; an unknown one fails here, not on a text
        self.target_policy = check_policy(settings.target_pass or registry.target_pass or "multi")
        if registry.entity_target is not None and self.target_policy != "off" and self.has_span_head:
            tm = registry.entity_target
            loaded = load_artifact(tm.artifact_path, settings.device)
            head = loaded.model.tasks.get("entity_target")
            if head is None or list(head.labels) != tm.labels:
                raise ModelLoadError(f"artifact {tm.artifact_path} has no entity_target head with labels "
                                     f"{tm.labels}; fix the registry")
            if on_gpu and self.bf16:
                loaded.model.to(torch.bfloat16)
            self.target = _EncoderGroup(loaded, ["entity_target"], tm.max_length, settings.token_budget)
        if self.precision == "int8":
            self._use_int8()
        log.info("engine precision: %s (asked for %s)", self.precision, settings.precision)

    @property
    def encoder_groups(self) -> list[_EncoderGroup]:
        """Every encoder the engine runs: the shared groups and, if loaded, the target model's."""
        return [*self.groups, *([self.target] if self.target is not None else [])]

    def _use_int8(self) -> None:
        """Swap every encoder for its int8 ONNX Runtime build (models/engine/int8.py; built once per machine).

        All are built before any is swapped; a failure is an error that says why (Int8Unavailable)."""
        groups = self.encoder_groups
        encoders = [int8.int8_encoder(g.loaded) for g in groups]
        for group, encoder in zip(groups, encoders, strict=True):
            group.loaded.model.encoder = encoder

    # -- tokenisation -------------------------------------------------------------------------
    def _windows(self, group: _EncoderGroup, texts: Sequence[str]) -> _Tokens:
        """Every text's windows (a long text overflows into several), read straight from the Rust
        encodings: the ids, character offsets and word ids of the Hugging Face wrapper's
        `return_overflowing_tokens` output, in its order (a text's first window, then its overflow)."""
        flat, owner = [], []
        for i, enc in enumerate(group.windows_tokenizer.encode_batch([t[: self.settings.max_chars] for t in texts])):
            flat.append(enc)
            owner.append(i)
            for more in enc.overflowing:
                flat.append(more)
                owner.append(i)
        ids = [e.ids for e in flat]
        n = len(ids)
        length = np.fromiter(map(len, ids), np.int64, n)
        first = np.zeros(n, np.int64)
        np.cumsum(length[:-1], out=first[1:])
        total = int(length.sum())
        offsets = np.zeros((total + 1, 2), np.int64)
        offsets[:total] = np.fromiter(chain.from_iterable(chain.from_iterable(e.offsets for e in flat)), np.int64,
                                      2 * total).reshape(total, 2)
        words = np.full(total + 1, -1, np.int64)
        words[:total] = np.fromiter((-1 if w is None else w for w in chain.from_iterable(e.word_ids for e in flat)),
                                    np.int64, total)
        window_text = np.asarray(owner, np.int64)
        windows = [_Window(t, x) for t, x in zip(owner, ids, strict=True)]
        return _Tokens(windows, window_text, first, length, offsets[:, 0], offsets[:, 1], words)

    # -- forward ------------------------------------------------------------------------------
    @torch.inference_mode()
    def _run_group(self, group: _EncoderGroup, tokens: _Tokens,
                   spans: Sequence[Sequence[tuple[int, int]]] | None = None
                   ) -> tuple[dict[str, list[np.ndarray]], dict[str, tuple[np.ndarray, np.ndarray]],
                              list[list[_SpanScore]]]:
        """Per-window probabilities per sequence task; per token task, each token's best label id and its
        probability as columns beside `tokens`' (taken over whole batches, not per window); with a span
        head in the group, per-window span scores."""
        model = group.loaded.model
        pad = group.loaded.tokenizer.pad_token_id
        device = torch.device(self.settings.device)
        windows = tokens.windows
        span_task = next((t for t in group.tasks if model.tasks[t].kind is TaskKind.SPAN), None)
        dense = [t for t in group.tasks if t != span_task]
        token_tasks = [t for t in dense if model.tasks[t].kind is TaskKind.TOKEN]
        org = _org_tags(model.tasks["ner"].labels) if "ner" in token_tasks else None
        span_out: list[list[_SpanScore]] = [[] for _ in windows]
        out: dict[str, list[np.ndarray | None]] = {t: [None] * len(windows) for t in dense if t not in token_tasks}
        size = len(tokens.words)
        tags = {t: (np.zeros(size, np.int64), np.zeros(size, np.float32)) for t in token_tasks}
        for idx in plan_batches([len(w.input_ids) for w in windows], group.token_budget, self.settings.max_batch):
            with stage("pad"):
                ids, mask = _padded([windows[i].input_ids for i in idx], pad)
                at = tokens.gather(idx, ids.shape[1])
            with stage("to_device"):
                ids, mask = to_device(ids, device), to_device(mask, device)
            with stage("forward"), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.autocast):
                hidden = model.encode(ids, mask)
                logits = {t: model.head_logits(hidden, mask, t) for t in dense}
                for t in logits:  # the copy back waits for the device: count it as the forward pass
                    logits[t] = torch.softmax(logits[t].float(), -1).cpu()
            best_ner = None
            with stage("decode_heads"):
                for task, lg in logits.items():
                    probs = lg.numpy()
                    if task in tags:  # argmax once over the padded batch; padding positions are not kept
                        best = probs.argmax(-1)
                        real = at != tokens.pad
                        tags[task][0][at[real]] = best[real]
                        tags[task][1][at[real]] = probs.max(-1)[real]
                        best_ner = best if task == "ner" else best_ner
                    else:
                        for row, i in enumerate(idx):
                            out[task][i] = probs[row]
            if span_task is not None:
                self._score_spans(model, span_task, hidden, mask, idx, tokens, at, best_ner, org, spans, span_out)
        return out, tags, span_out  # type: ignore[return-value]

    def _score_spans(self, model, task: str, hidden: torch.Tensor, mask: torch.Tensor, idx: list[int],
                     tokens: _Tokens, at: np.ndarray, best: np.ndarray | None,
                     org: tuple[np.ndarray, np.ndarray] | None, spans, span_out: list[list[_SpanScore]]) -> None:
        """Score every candidate mention of this batch's windows with the span head, in one call."""
        with stage("mentions"):
            found = self._span_candidates(idx, tokens, at, best, org, spans)
        if found is None:
            return
        rows, meta, span = found
        sel = torch.tensor(rows, device=hidden.device)
        with stage("forward"), torch.autocast(hidden.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            lg = model.span_logits(task, hidden[sel], mask[sel], span.to(hidden.device))
            probs = torch.softmax(lg.float(), -1).cpu().numpy()
        for (i, s, e, c, inside), p in zip(meta, probs, strict=True):
            span_out[i].append((s, e, p, c, inside))

    @staticmethod
    def _span_candidates(idx: list[int], tokens: _Tokens, at: np.ndarray, best: np.ndarray | None,
                         org: tuple[np.ndarray, np.ndarray] | None, spans
                         ) -> tuple[list[int], list[_Candidate], torch.Tensor] | None:
        """The batch rows, (window, start, end, centrality, inside) and token masks of every candidate
        mention: per window (batch row, in order) its ORG runs in text order, then the given spans that
        overlap it. `at`: the batch's column indices (Tokens.gather); `best`: the NER head's label ids
        over the padded batch; `org`: which label ids are B-ORG or I-ORG, and which I-ORG (_org_tags)."""
        starts, ends = tokens.starts[at], tokens.ends[at]  # (rows, width): padding reads (0, 0)
        run_row, run_s, run_e = (_org_runs(starts, ends, tokens.words[at], best, *org)
                                 if best is not None and org is not None else ([], [], []))
        cands: list[tuple[int, int, int]] = []
        k = 0
        for row, i in enumerate(idx):
            while k < len(run_row) and run_row[k] == row:
                cands.append((row, run_s[k], run_e[k]))
                k += 1
            n = int(tokens.length[i])
            if spans is not None and n > 2:  # [CLS] ... [SEP]: given spans overlapping the window
                a = int(tokens.first[i])
                first, last = int(tokens.starts[a + 1]), int(tokens.ends[a + n - 2])
                cands += [(row, s, e) for s, e in spans[tokens.windows[i].text_index] if s < last and e > first]
        if not cands:
            return None
        row_a, s_a, e_a = (np.array(c, np.int64) for c in zip(*cands, strict=True))
        cs, ce = starts[row_a], ends[row_a]
        masks = (ce > cs) & (cs < e_a[:, None]) & (ce > s_a[:, None])  # the tokens overlapping each candidate
        keep = np.flatnonzero(masks.any(1))
        if not len(keep):
            return None
        masks, row_a, s_a, e_a, cs, ce = masks[keep], row_a[keep], s_a[keep], e_a[keep], cs[keep], ce[keep]
        on = np.arange(len(keep))
        lo = masks.argmax(1)
        hi = masks.shape[1] - 1 - masks[:, ::-1].argmax(1)
        centrality = np.minimum(lo - 1, tokens.length[np.asarray(idx)[row_a]] - 2 - hi)
        inside = (cs[on, lo] <= s_a) & (ce[on, hi] >= e_a)
        window = np.asarray(idx)[row_a]
        meta = list(zip(window.tolist(), s_a.tolist(), e_a.tolist(), centrality.tolist(), inside.tolist(), strict=True))
        return row_a.tolist(), meta, torch.from_numpy(masks)

    # -- aggregation --------------------------------------------------------------------------
    def predict(self, texts: Sequence[str],
                spans: Sequence[Sequence[tuple[int, int]]] | None = None) -> list[Prediction]:
        """Predictions in input order. Works through `chunk_texts` texts at a time, tokenising the
        next chunk in a background thread while the current one runs through the model (the fast
        tokenizer releases the GIL), so memory stays flat and the model never waits on tokenising.

        `spans`: per text, character spans whose per-company sentiment is wanted (besides the ORG
        entities and the `mention_finder`'s spans); each comes back in `Prediction.mentions`."""
        texts = list(texts)
        if not texts:
            return []
        if spans is not None and len(spans) != len(texts):
            raise ValueError("spans needs one list per text")
        if self.mention_finder is not None and self.has_span_head:
            with stage("linking"):
                found = [list(self.mention_finder(t[: self.settings.max_chars])) for t in texts]
            spans = found if spans is None else [list(a) + [x for x in b if x not in a]
                                                 for a, b in zip(spans, found, strict=True)]
        size = self.settings.chunk_texts
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        span_chunks = [spans[i : i + size] if spans is not None else None for i in range(0, len(texts), size)]
        results: list[Prediction] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as pool:
            pending = pool.submit(self._tokenize, chunks[0])
            for k, chunk in enumerate(chunks):
                windows = pending.result()
                if k + 1 < len(chunks):
                    pending = pool.submit(self._tokenize, chunks[k + 1])
                results.extend(self._predict_chunk(chunk, windows, span_chunks[k]))
        return results

    @property
    def has_span_head(self) -> bool:
        return any(g.loaded.model.tasks[t].kind is TaskKind.SPAN for g in self.groups for t in g.tasks)

    def _tokenize(self, texts: list[str]) -> list[_Tokens]:
        with stage("tokenise"):
            return [self._windows(group, texts) for group in self.groups]

    def _predict_chunk(self, texts: list[str], tokens_per_group: list[_Tokens],
                       spans: Sequence[Sequence[tuple[int, int]]] | None = None) -> list[Prediction]:
        seq: dict[str, list[np.ndarray]] = {}
        found: list[list[EntitySpan]] = [[] for _ in texts]
        span_scores: list[list[_SpanScore]] = [[] for _ in texts]
        for group, tokens in zip(self.groups, tokens_per_group, strict=False):
            window_probs, tags, scored = self._run_group(group, tokens, spans)
            for w, sc in zip(tokens.windows, scored, strict=True):
                span_scores[w.text_index].extend(sc)
            for task in group.tasks:
                labels = group.loaded.model.tasks[task].labels
                if group.loaded.model.tasks[task].kind is TaskKind.SPAN:
                    continue
                if group.loaded.model.tasks[task].kind is TaskKind.SEQUENCE:
                    with stage("decode_heads"):
                        seq[task] = _average_windows(tokens.windows, window_probs[task], len(texts))
                else:  # the registry's one token task, ner
                    with stage("entities"):
                        decoded = decode_columns(texts, tokens.window_text, tokens.length, tokens.starts, tokens.ends,
                                                 tokens.words, *tags[task], labels)
                        for i, ents in enumerate(decoded):
                            found[i] += ents
        sent_labels = self.registry.sentiment.labels
        topic_labels = self.registry.topic.labels
        results = []
        with_mentions = self.has_span_head  # a property that walks the groups: once per chunk, not per text
        for i, text in enumerate(texts):
            entities = found[i]
            with stage("decode_heads"):
                results.append(self._prediction(seq["sentiment"][i], seq["topic"][i], entities,
                                                sent_labels, topic_labels))
            if with_mentions:
                with stage("mentions"):
                    pred = results[-1]
                    targets = [(e.start, e.end, "ner") for e in entities if e.type == "ORG"]
                    targets += [(s, e, "given") for s, e in (spans[i] if spans is not None else [])]
                    pred.mentions = [_mention(text, s, e, origin, span_scores[i], sent_labels, pred)
                                     for s, e, origin in targets]
        if self.target is not None:
            self._target_pass(texts, results)
        return results

    @torch.inference_mode()
    def _target_pass(self, texts: list[str], results: list[Prediction]) -> None:
        """Re-score the mentions of the texts the policy picks with the target model, in place.

        Which mentions it reads is `models/targets.pick_targets`: one input per group of overlapping mentions,
        whose reading every mention of the group takes (the cashtag "$GS" and the ORG "GS" inside it)."""
        todo: dict[tuple[int, int, int], str] = {}
        picked: list[list[tuple[int, int, str]]] = []
        for i, pred in enumerate(results):
            sure = {(e.start, e.end) for e in pred.entities if e.type == "ORG" and e.score >= MIN_ORG_SCORE}
            mentions = pred.mentions or []
            picked.append(pick_targets([(m.start, m.end, m.text) for m in mentions if m.origin == "given"],
                                       [(m.start, m.end, m.text) for m in mentions
                                        if m.origin == "ner" and (m.start, m.end) in sure],
                                       self.target_policy))
            for s, e, _ in picked[-1]:
                todo[(i, s, e)] = mark_target(texts[i], s, e)
        if not todo:
            return
        group = self.target
        assert group is not None
        keys = list(todo)
        with stage("tokenise"):  # the first window of each: the input truncated to max_length
            ids = [e.ids for e in group.windows_tokenizer.encode_batch([todo[k] for k in keys])]
        probs = self._sequence_probs(group, "entity_target", ids)
        labels = group.loaded.model.tasks["entity_target"].labels
        scored = {k: {label: round(float(p[j]), 6) for j, label in enumerate(labels)}
                  for k, p in zip(keys, probs, strict=True)}
        for i, pred in enumerate(results):  # a mention takes the reading of the picked span it overlaps
            if pred.mentions and picked[i]:
                pred.mentions = [_rescored(m, next((scored[(i, s, e)] for s, e, _ in picked[i]
                                                    if s < m.end and m.start < e), None))
                                 for m in pred.mentions]

    def _sequence_probs(self, group: _EncoderGroup, task: str, ids: list[list[int]]) -> list[np.ndarray]:
        """Class probabilities of one sequence head for pre-tokenised inputs, in order (token-budget batches)."""
        model = group.loaded.model
        pad = group.loaded.tokenizer.pad_token_id
        device = torch.device(self.settings.device)
        out: list[np.ndarray | None] = [None] * len(ids)
        for idx in plan_batches([len(x) for x in ids], group.token_budget, self.settings.max_batch):
            with stage("pad"):
                batch, mask = _padded([ids[i] for i in idx], pad)
            batch, mask = to_device(batch, device), to_device(mask, device)
            with stage("forward"), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.autocast):
                logits = model.head_logits(model.encode(batch, mask), mask, task)
                probs = torch.softmax(logits.float(), -1).cpu().numpy()
            for row, i in enumerate(idx):
                out[i] = probs[row]
        return out  # type: ignore[return-value]

    @staticmethod
    def _prediction(sp: np.ndarray, tp: np.ndarray, entities: list, sent_labels: Sequence[str],
                    topic_labels: Sequence[str]) -> Prediction:
        probs = {label: round(float(sp[j]), 6) for j, label in enumerate(sent_labels)}
        k = int(tp.argmax())
        return Prediction(
            sentiment=sent_labels[int(sp.argmax())],
            sentiment_score=_score(probs),
            sentiment_probs=probs,
            topic=topic_labels[k],
            topic_score=round(float(tp[k]), 6),
            entities=entities,
        )


def _rescored(m: MentionSentiment, probs: dict[str, float] | None) -> MentionSentiment:
    """The mention with the target model's probabilities, if it has them."""
    if probs is None:
        return m
    return replace(m, sentiment=max(probs, key=probs.__getitem__), score=_score(probs), probs=probs, scorer="target")


def _padded(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded to the longest row, and the attention mask (dynamic padding).

    One scatter of all the ids through the mask, not a tensor per row: 0.014 -> 0.0015 core-ms a
    post on 2,000 generated posts (the `pad` stage), the same tensors."""
    lengths = np.fromiter(map(len, rows), np.int64, len(rows))
    mask = np.arange(int(lengths.max())) < lengths[:, None]
    ids = np.full(mask.shape, pad, np.int64)
    ids[mask] = np.fromiter(chain.from_iterable(rows), np.int64, int(lengths.sum()))
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))


def _score(probs: dict[str, float]) -> float:
    return round(max(-1.0, min(1.0, probs["positive"] - probs["negative"])), 6)


def _org_tags(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per label id: whether it is B-ORG or I-ORG, and whether it is I-ORG (for _org_runs)."""
    return (np.array([label in ("B-ORG", "I-ORG") for label in labels], bool),
            np.array([label == "I-ORG" for label in labels], bool))


def _org_runs(starts: np.ndarray, ends: np.ndarray, words: np.ndarray, best: np.ndarray, is_org: np.ndarray,
              is_i_org: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Batch row, start and end of every ORG run the NER head tags in a padded batch of windows, in
    row-major order: the window-level twin of decode_entities, for span scoring.

    The rule, token by token along a window (tests/pipeline/enrich/test_entity_columns.py keeps it as a
    loop: the reference):
    a special or empty token is skipped but forgets the previous word; with a run open, I-ORG or a later
    piece of the previous token's word extends it; else B-ORG or I-ORG opens one; else the run closes.
    As arrays over the whole batch (no loop per token): a run is open after token k exactly when some
    token from the start of k's word chain (the last token that is not a later piece of the one before)
    to k is tagged ORG, so every token knows whether it extends, opens or closes without a loop."""
    width = starts.shape[1]
    valid = ((words >= 0) & (ends > starts)).ravel()
    tok = np.flatnonzero(valid)
    if not len(tok):
        return [], [], []
    col = tok % width
    row = tok // width
    flat_words = words.ravel()
    sub = (col > 0) & valid[tok - 1] & (flat_words[tok - 1] == flat_words[tok])
    lab = best.ravel()[tok]
    org, i_org = is_org[lab], is_i_org[lab]
    count = np.cumsum(org)
    chain_of = np.cumsum(~sub) - 1
    before_chain = (count - org)[np.flatnonzero(~sub)]
    open_after = count > before_chain[chain_of]
    open_before = np.zeros(len(tok), bool)
    open_before[1:] = open_after[:-1] & (row[1:] == row[:-1])
    extends = open_before & (sub | i_org)
    opens = org & ~extends
    member = np.flatnonzero(opens | extends)
    if not len(member):
        return [], [], []
    run_of = np.cumsum(opens)[member]
    last = member[np.r_[run_of[1:] != run_of[:-1], True]]
    first = np.flatnonzero(opens)
    return (row[first].tolist(), starts.ravel()[tok[first]].tolist(), ends.ravel()[tok[last]].tolist())


def _mention(text: str, start: int, end: int, origin: str, scored: list[_SpanScore], labels: Sequence[str],
             post: Prediction) -> MentionSentiment:
    """The mention's score from the window where a candidate overlapping it sits most centrally
    (whole candidates first); the post's sentiment if no window scored it (beyond max_chars)."""
    over = [c for c in scored if c[0] < end and c[1] > start]
    if not over:
        return MentionSentiment(text[start:end], start, end, post.sentiment, post.sentiment_score,
                                dict(post.sentiment_probs), "post")
    exact = [c for c in over if (c[0], c[1]) == (start, end)] or over
    best = max(exact, key=lambda c: (c[4], c[3]))
    probs = {label: round(float(best[2][j]), 6) for j, label in enumerate(labels)}
    return MentionSentiment(text[start:end], start, end, labels[int(best[2].argmax())], _score(probs), probs, origin)


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo names them (empty where there is no /proc/cpuinfo)."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return frozenset()


CPU_FEATURES = {"amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8", "avx512_bf16": "AVX512-BF16",
                "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI", "avx512f": "AVX-512", "avx2": "AVX2"}


def cpu_features(flags: Collection[str] | None = None) -> list[str]:
    """The CPU features the inference paths depend on (AMX, AVX512-BF16, VNNI, AVX-512, AVX2), named for
    reports: every benchmark and card says which of them its figures were measured with."""
    have = cpu_flags() if flags is None else set(flags)
    return [label for flag, label in CPU_FEATURES.items() if flag in have]


def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16: bf16 matrix products run in hardware (2.5x fp32 with AMX, ~1.6x with AVX512-BF16 alone)."""
    return bool(NATIVE_BF16 & cpu_flags())


def pick_precision(requested: str, device: str, flags: Collection[str]) -> Precision:
    """The engine's precision, decided here and only here (pure: the CPU flags come in).

    `auto`: bf16 on CUDA and on CPUs with native bf16 (AMX, AVX512-BF16), else fp32. An explicit fp32,
    bf16 or int8 is taken as asked, except int8 on CUDA, which does not exist. `auto` does not pick
    int8 on CPUs without native bf16: its per-company sentiment is below fp32 on the FinEntity
    hold-out (1 of 149 mentions with target model t3, 0.67 points; the gate is 0.5) and its speed on an
    AVX2-only CPU is not measured
    (docs/SCALING.md, "The int8 CPU path")."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; use {', '.join(PRECISIONS)}")
    cuda = torch.device(device).type == "cuda"
    if requested == "int8" and cuda:
        raise int8.Int8Unavailable("precision int8 runs on the CPU (ONNX Runtime); on a GPU use auto or bf16")
    if requested != "auto":
        return cast(Precision, requested)
    return "bf16" if cuda or NATIVE_BF16 & set(flags) else "fp32"


def use_bf16(precision: str, device: str) -> bool:
    """Whether training and evaluation run bf16 autocast: `precision` as the engine reads it, less int8,
    which is an inference-only path."""
    if precision == "int8":
        raise ValueError("int8 is an inference precision (the engine's ONNX Runtime path); use auto, fp32 or bf16")
    return pick_precision(precision, device, cpu_flags()) == "bf16"


def _average_windows(windows: list[_Window], probs: list[np.ndarray], n_texts: int) -> list[np.ndarray]:
    """Per-text probabilities: windows weighted by their token count."""
    sums: list[np.ndarray | None] = [None] * n_texts
    weights = [0.0] * n_texts
    for w, p in zip(windows, probs, strict=False):
        wt = float(len(w.input_ids))
        total = sums[w.text_index]
        sums[w.text_index] = p * wt if total is None else total + p * wt
        weights[w.text_index] += wt
    out = []
    for s, wt in zip(sums, weights, strict=True):
        if s is None:  # every text has at least one window (an empty text is one window of specials)
            raise ValueError("a text without a window: the tokenizer's windows do not cover every text")
        out.append(s / wt)
    return out
