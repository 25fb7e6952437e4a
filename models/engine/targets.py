"""Target-marked per-company sentiment: a short second pass for texts that name several companies.

Why a second pass at all: the span head (models/spans.py) reads the shared encoder's token states,
and that encoder is frozen for it (it also serves sentiment, topic and NER). Those states carry
mostly the sentence's sentiment, so on held-out texts naming one positive and one negative company
the span head got both labels right for only 3 of 21 pairs. A small model fine-tuned on inputs where
one company is marked learns to read the words about *that* company ("Apple beats estimates while
[ Samsung ] slumps"): the auxiliary-target input of TD-BERT style models.

The input: the mention's text, a [SEP], then the text (cropped to `context` characters either side
of the mention, cut at a space) with the mention wrapped in "[ ... ]". The BERT tokenizer reads the
literal "[SEP]" as its separator token, so this is a sentence pair without a second tokenizer call.

What it costs: one pass of the target model per company of a text that names at least two different
companies (`pick_targets`; the default `multi` policy). A text about one company keeps the span head's
label, which agrees with the post for most single-company rows. The crop keeps each pass short.

Training rows come from the entity-level JSONL of ../shared/data, split by document exactly like the
span head (models/data.holdout_split): seed 13 holds out 10% of the documents (never trained on or
selected on), seed 14 takes 10% of the rest for model selection.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from finpulse.models.data import LabeledText, holdout_split, normalise
from finpulse.models.spans import read_entity_jsonl

TARGET_CONTEXT_CHARS = 300  # characters kept on each side of the mention
MIN_ORG_SCORE = 0.5  # an ORG the NER head is less sure of is rarely a company: it neither triggers nor takes the pass
POLICIES = ("multi", "all", "off")
PARTS = ("fit", "select", "heldout")
SELECT_SEED = 14  # the selection split inside the training documents; the held-out one is data.HOLDOUT_SEED

Span = tuple[int, int, str]  # start, end, the mention's text


def mark_target(text: str, start: int, end: int, context: int = TARGET_CONTEXT_CHARS) -> str:
    """The target model's input for the mention text[start:end]. Pure."""
    mention = text[start:end]
    a, b = max(0, start - context), min(len(text), end + context)
    left, right = text[a:start], text[end:b]
    if a > 0 and " " in left:  # do not start or end on half a word
        left = left.split(" ", 1)[1]
    if b < len(text) and " " in right:
        right = right.rsplit(" ", 1)[0]
    return f"{mention} [SEP] {left}[ {mention} ]{right}"



def non_overlapping(spans: Sequence[Span]) -> list[Span]:
    """One span per group of overlapping ones ("$AAPL" and the ORG "AAPL" inside it): the earliest, longest."""
    kept: list[Span] = []
    for s in sorted(spans, key=lambda m: (m[0], -(m[1] - m[0]))):
        if not any(s[0] < k[1] and k[0] < s[1] for k in kept):
            kept.append(s)
    return kept


def distinct_mentions(spans: Sequence[Span]) -> int:
    """How many different things a text names: a mention overlapping an earlier one or repeating its words
    (case-insensitive) is not counted again. Pure."""
    return len({text.casefold() for _, _, text in non_overlapping(spans)})


def check_policy(policy: str) -> str:
    """The policy, or a ValueError naming the choices."""
    if policy not in POLICIES:
        raise ValueError(f"unknown target-pass policy {policy!r}; use {', '.join(POLICIES)}")
    return policy


def wants_target_pass(spans: Sequence[Span], policy: str) -> bool:
    """Whether a text's mentions are re-scored by the target model: `multi` when it names two or more
    distinct things (`distinct_mentions`), `all` whenever it has a mention, `off` never."""
    if check_policy(policy) == "off" or not spans:
        return False
    return policy == "all" or distinct_mentions(spans) >= 2


def pick_targets(given: Sequence[Span], sure_orgs: Sequence[Span], policy: str) -> list[Span]:
    """The mentions of one text the target model reads (empty: the span head's labels stand). Pure.

    The companies of a text are the caller's spans (`given`: in the pipeline its cashtags and gazetteer names,
    which link to companies; in evaluation the labelled entities); only a text with no such span falls back
    to the ORG entities the NER head is sure of, so a regulator or an index named beside one company ("files
    its annual report with the SEC") costs no pass. Overlapping mentions are read once."""
    chosen = list(given) or list(sure_orgs)
    return non_overlapping(chosen) if wants_target_pass(chosen, policy) else []


def target_rows(paths: Sequence[str | Path], part: str) -> list[LabeledText]:
    """Target-marked, labelled rows of one document-level part of the entity JSONL files.

    `fit` rows repeat a file as often as it is listed (oversampling the small FinEntity file);
    `select` and `heldout` take each file once. Entities whose name is not found in the text are skipped."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; use {', '.join(PARTS)}")
    files = [Path(p) for p in paths] if part == "fit" else list(dict.fromkeys(Path(p) for p in paths))
    rows: list[LabeledText] = []
    for path in files:
        docs = read_entity_jsonl(path)
        rest, held = holdout_split(docs)
        if part == "heldout":
            chosen = [docs[i] for i in held]
        else:
            sub = [docs[i] for i in rest]
            fit, select = holdout_split(sub, seed=SELECT_SEED)
            chosen = [sub[i] for i in (fit if part == "fit" else select)]
        rows += [LabeledText(mark_target(d.text, e.start, e.end), e.label)
                 for d in chosen for e in d.entities if e.start is not None and e.end is not None]
    return rows


def transfer_inputs(texts: Sequence[str], find_mentions: Callable[[str], Sequence[tuple[int, int]]],
                    exclude: Collection[str] = (), per_text: int = 2, limit: int | None = None,
                    seed: int = 13) -> list[str]:
    """Target-marked inputs over unlabelled real texts, for a per-company teacher to label (distillation).

    Each text's mentions (`find_mentions`: in the CLI the pipeline's cashtags and gazetteer names) are
    read once (`non_overlapping`); up to `per_text` of them are marked, each as its own input. Texts whose
    normalised form is in `exclude` (the labelled entity sets: never their documents, held-out or not)
    are skipped. The result is de-duplicated, shuffled with `seed` and cut to `limit`. Pure."""
    import random

    out: dict[str, None] = {}
    for text in texts:
        if normalise(text) in exclude:
            continue
        spans = non_overlapping([(s, e, text[s:e]) for s, e in find_mentions(text)])
        for s, e, _ in spans[:per_text]:
            out.setdefault(mark_target(text, s, e), None)
    inputs = list(out)
    random.Random(seed).shuffle(inputs)
    return inputs[:limit] if limit is not None else inputs
