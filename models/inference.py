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
input (models/targets.py): a second, short pass of a small model, only where the span head is weakest.

Precision (`pick_precision`): `auto` is bf16 on CUDA and on CPUs with native bf16, else fp32; `int8`
(asked for, CPU only) swaps every encoder for a static-int8 ONNX Runtime build (models/int8.py), whose
labels do not depend on the batch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch

from finpulse.models import int8
from finpulse.models.artifact import LoadedModel, ModelLoadError, load_artifact
from finpulse.models.batching import plan_batches
from finpulse.models.device import gpu_token_budget, to_device
from finpulse.models.entities import EntitySpan, TokenPrediction, decode_entities, merge_windows
from finpulse.models.registry import ModelRegistry
from finpulse.models.stages import stage
from finpulse.models.targets import MIN_ORG_SCORE, check_policy, mark_target, pick_targets
from finpulse.models.tasks import TaskKind

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "int8")
Precision = Literal["bf16", "fp32", "int8"]
NATIVE_BF16 = frozenset({"amx_bf16", "avx512_bf16"})  # /proc/cpuinfo flags: bf16 matrix products in hardware


@dataclass(frozen=True)
class InferenceSettings:
    device: str = "cpu"
    stride: int = 32
    max_chars: int = 20_000
    token_budget: int = 8192  # padded tokens per forward pass
    max_batch: int = 256  # texts per pass (on an H100 larger batches measured no faster: the host side binds)
    threads: int | None = None  # torch intra-op threads on CPU (None: torch default)
    chunk_texts: int = 2048  # texts tokenised and held at once: memory stays flat however many are passed
    quantize: str = "none"  # "int8": dynamic int8 linear layers on CPU (measurement only: batch-dependent)
    precision: str = "auto"  # auto | fp32 | bf16 | int8: see pick_precision
    target_pass: str = "multi"  # which texts' mentions the entity_target model re-reads: multi, all or off


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
    offsets: list[tuple[int, int]]
    words: list[int | None]


# One scored candidate: (start, end, probs, centrality, fully inside the window)
_SpanScore = tuple[int, int, np.ndarray, int, bool]


_Candidate = tuple[int, int, int, int, bool]  # window, start, end, centrality, inside


class _EncoderGroup:
    """One loaded artifact and the tasks it serves."""

    def __init__(self, loaded: LoadedModel, tasks: list[str], max_length: int, token_budget: int) -> None:
        self.loaded = loaded
        self.tasks = tasks
        self.max_length = max_length
        self.token_budget = token_budget


class Enricher:
    def __init__(self, registry: ModelRegistry, settings: InferenceSettings = InferenceSettings(),
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
            loaded = load_artifact(path, settings.device, settings.quantize)
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
            self.groups.append(_EncoderGroup(loaded, tasks, max_len, budget))
        self.target: _EncoderGroup | None = None
        check_policy(settings.target_pass)  # an unknown policy fails here, not on the first text
        if registry.entity_target is not None and settings.target_pass != "off" and self.has_span_head:
            tm = registry.entity_target
            loaded = load_artifact(tm.artifact_path, settings.device, settings.quantize)
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
        """Swap every encoder for its int8 ONNX Runtime build (models/int8.py; built once per machine).

        All are built before any is swapped; a failure is an error that says why (Int8Unavailable)."""
        if self.settings.quantize != "none":
            raise int8.Int8Unavailable("precision int8 brings its own quantised encoder; leave quantize at none")
        groups = self.encoder_groups
        encoders = [int8.int8_encoder(g.loaded) for g in groups]
        for group, encoder in zip(groups, encoders, strict=True):
            group.loaded.model.encoder = encoder

    # -- tokenisation -------------------------------------------------------------------------
    def _windows(self, group: _EncoderGroup, texts: Sequence[str]) -> list[_Window]:
        tok = group.loaded.tokenizer
        enc = tok(
            [t[: self.settings.max_chars] for t in texts],
            truncation=True,
            max_length=group.max_length,
            stride=self.settings.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        mapping = enc["overflow_to_sample_mapping"]
        return [
            _Window(int(mapping[i]), enc["input_ids"][i], [tuple(o) for o in enc["offset_mapping"][i]], enc.word_ids(i))
            for i in range(len(enc["input_ids"]))
        ]

    # -- forward ------------------------------------------------------------------------------
    @torch.inference_mode()
    def _run_group(self, group: _EncoderGroup, windows: list[_Window],
                   spans: Sequence[Sequence[tuple[int, int]]] | None = None
                   ) -> tuple[dict[str, list[np.ndarray]], list[list[_SpanScore]]]:
        """Per-window probabilities per task and, with a span head in the group, per-window span scores."""
        model = group.loaded.model
        pad = group.loaded.tokenizer.pad_token_id
        device = torch.device(self.settings.device)
        span_task = next((t for t in group.tasks if model.tasks[t].kind is TaskKind.SPAN), None)
        dense = [t for t in group.tasks if t != span_task]
        ner_labels = model.tasks["ner"].labels if "ner" in dense else ()
        span_out: list[list[_SpanScore]] = [[] for _ in windows]
        out: dict[str, list[np.ndarray | None]] = {t: [None] * len(windows) for t in dense}
        for idx in plan_batches([len(w.input_ids) for w in windows], group.token_budget, self.settings.max_batch):
            with stage("pad"):
                ids, mask = _padded([windows[i].input_ids for i in idx], pad)
            with stage("to_device"):
                ids, mask = to_device(ids, device), to_device(mask, device)
            with stage("forward"), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.autocast):
                hidden = model.encode(ids, mask)
                logits = {t: model.head_logits(hidden, mask, t) for t in dense}
                for t in logits:  # the copy back waits for the device: count it as the forward pass
                    logits[t] = torch.softmax(logits[t].float(), -1).cpu()
            with stage("decode_heads"):
                for task, lg in logits.items():
                    probs = lg.numpy()
                    for row, i in enumerate(idx):
                        out[task][i] = probs[row] if probs.ndim == 2 else probs[row, : len(windows[i].input_ids)]
            if span_task is not None:
                self._score_spans(model, span_task, hidden, mask, idx, windows, out.get("ner"), ner_labels, spans,
                                  span_out)
        return out, span_out  # type: ignore[return-value]

    def _score_spans(self, model, task: str, hidden: torch.Tensor, mask: torch.Tensor, idx: list[int],
                     windows: list[_Window], ner_probs: list | None, ner_labels: Sequence[str], spans,
                     span_out: list[list[_SpanScore]]) -> None:
        """Score every candidate mention of this batch's windows with the span head, in one call."""
        with stage("mentions"):
            found = self._span_candidates(idx, windows, ner_probs, ner_labels, spans, hidden.shape[1])
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
    def _span_candidates(idx: list[int], windows: list[_Window], ner_probs: list | None, ner_labels: Sequence[str],
                         spans, width: int) -> tuple[list[int], list[_Candidate], torch.Tensor] | None:
        """The batch rows, (window, start, end, centrality, inside) and token masks of every candidate mention."""
        rows: list[int] = []
        masks: list[np.ndarray] = []
        meta: list[_Candidate] = []
        for row, i in enumerate(idx):
            w = windows[i]
            cands = _org_runs(w, ner_probs[i], ner_labels) if ner_probs is not None else []
            if spans is not None and len(w.offsets) > 2:  # [CLS] ... [SEP]: given spans overlapping the window
                first, last = w.offsets[1][0], w.offsets[-2][1]
                cands += [(s, e) for s, e in spans[w.text_index] if s < last and e > first]
            for s, e in cands:
                m = np.array([b > a and a < e and b > s for a, b in w.offsets], dtype=bool)
                pos = np.flatnonzero(m)
                if not len(pos):
                    continue
                n = len(w.offsets)
                inside = w.offsets[pos[0]][0] <= s and w.offsets[pos[-1]][1] >= e
                rows.append(row)
                masks.append(m)
                meta.append((i, s, e, min(int(pos[0]) - 1, n - 2 - int(pos[-1])), inside))
        if not rows:
            return None
        span = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, m in enumerate(masks):
            span[r, : len(m)] = torch.from_numpy(m)
        return rows, meta, span

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

    def _tokenize(self, texts: list[str]) -> list[list[_Window]]:
        with stage("tokenise"):
            return [self._windows(group, texts) for group in self.groups]

    def _predict_chunk(self, texts: list[str], windows_per_group: list[list[_Window]],
                       spans: Sequence[Sequence[tuple[int, int]]] | None = None) -> list[Prediction]:
        seq: dict[str, list[np.ndarray]] = {}
        ner_tokens: list[list[list[TokenPrediction]]] = [[] for _ in texts]
        span_scores: list[list[_SpanScore]] = [[] for _ in texts]
        for group, windows in zip(self.groups, windows_per_group, strict=False):
            window_probs, scored = self._run_group(group, windows, spans)
            for w, sc in zip(windows, scored, strict=True):
                span_scores[w.text_index].extend(sc)
            for task in group.tasks:
                labels = group.loaded.model.tasks[task].labels
                if group.loaded.model.tasks[task].kind is TaskKind.SPAN:
                    continue
                if group.loaded.model.tasks[task].kind is TaskKind.SEQUENCE:
                    with stage("decode_heads"):
                        seq[task] = _average_windows(windows, window_probs[task], len(texts))
                else:
                    with stage("entities"):
                        for w, p in zip(windows, window_probs[task], strict=False):
                            ner_tokens[w.text_index].append(_token_predictions(w, p, labels))
        sent_labels = self.registry.sentiment.labels
        topic_labels = self.registry.topic.labels
        results = []
        with_mentions = self.has_span_head  # a property that walks the groups: once per chunk, not per text
        for i, text in enumerate(texts):
            with stage("entities"):
                entities = decode_entities(text, merge_windows(ner_tokens[i])) if ner_tokens[i] else []
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
                                       self.settings.target_pass))
            for s, e, _ in picked[-1]:
                todo[(i, s, e)] = mark_target(texts[i], s, e)
        if not todo:
            return
        group = self.target
        assert group is not None
        keys = list(todo)
        with stage("tokenise"):
            enc = group.loaded.tokenizer([todo[k] for k in keys], truncation=True, max_length=group.max_length)
        probs = self._sequence_probs(group, "entity_target", enc["input_ids"])
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
    """Token ids padded to the longest row, and the attention mask (dynamic padding)."""
    ids = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, r in enumerate(rows):
        ids[row, : len(r)] = torch.tensor(r)
        mask[row, : len(r)] = 1
    return ids, mask


def _score(probs: dict[str, float]) -> float:
    return round(max(-1.0, min(1.0, probs["positive"] - probs["negative"])), 6)


def _org_runs(w: _Window, probs: np.ndarray, labels: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of the ORG runs the NER head tags in one window (B-ORG opens, I-ORG or a later
    piece of the same word continues): the window-level twin of decode_entities, for span scoring."""
    best = probs.argmax(-1)
    runs: list[tuple[int, int]] = []
    cur: list[int] | None = None
    prev_word = None
    for j, (s, e) in enumerate(w.offsets):
        word = w.words[j]
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


def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16: bf16 matrix products run in hardware (2.5x fp32 with AMX, ~1.6x with AVX512-BF16 alone)."""
    return bool(NATIVE_BF16 & cpu_flags())


def pick_precision(requested: str, device: str, flags: Collection[str]) -> Precision:
    """The engine's precision, decided here and only here (pure: the CPU flags come in).

    `auto`: bf16 on CUDA and on CPUs with native bf16 (AMX, AVX512-BF16), else fp32. An explicit fp32,
    bf16 or int8 is taken as asked, except int8 on CUDA, which does not exist. `auto` does not pick
    int8 on CPUs without native bf16: its per-company sentiment lost 2 points on the FinEntity
    hold-out (3 of 149 mentions; the gate is 0.5) and its speed on an AVX2-only CPU is not measured
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
        sums[w.text_index] = p * wt if sums[w.text_index] is None else sums[w.text_index] + p * wt
        weights[w.text_index] += wt
    return [s / wt for s, wt in zip(sums, weights, strict=False)]  # type: ignore[operator]


def _token_predictions(w: _Window, probs: np.ndarray, labels: Sequence[str]) -> list[TokenPrediction]:
    best = probs.argmax(-1)
    out = []
    for j, (start, end) in enumerate(w.offsets):
        if w.words[j] is None or end <= start:  # special tokens
            continue
        out.append(TokenPrediction(start, end, w.words[j], labels[int(best[j])], float(probs[j, best[j]])))
    return out
