"""Readers for the labelled files (classification CSV, CoNLL IOB2) and the one held-out split.

Every reader reports problems as `DataFormatError` naming the file and line, because a
bad training file is a user error that must say where to look.
"""

from __future__ import annotations

import csv
import hashlib
import random
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from finpulse.models.tasks import TaskKind, TaskSpec
from finpulse.schemas.errors import FinpulseError


class DataFormatError(FinpulseError, ValueError):
    """A labelled file is malformed; the message names the file and line."""


def read_lines(path: Path) -> list[str]:
    """A data file's lines; a file that is not UTF-8 is a DataFormatError naming it."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 ({exc})") from None


@dataclass(frozen=True)
class LabeledText:
    text: str
    label: int


@dataclass(frozen=True)
class TaggedSentence:
    tokens: tuple[str, ...]
    tags: tuple[int, ...]
    # Entity types this sentence's dataset never annotates: an "O" there may hide one of them.
    unannotated_types: frozenset[str] = field(default_factory=frozenset)


@contextmanager
def _csv_rows(path: Path) -> Iterator:
    """A csv.reader over a UTF-8 file; decoding and CSV errors become DataFormatError naming the file."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            yield csv.reader(fh)
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 ({exc})") from None
    except csv.Error as exc:
        raise DataFormatError(f"{path}: CSV error: {exc}") from None


def read_classification_csv(path: str | Path, task: TaskSpec) -> list[LabeledText]:
    """Read a `text,label` CSV (RFC 4180, quoted newlines allowed)."""
    path = Path(path)
    if task.kind is not TaskKind.SEQUENCE:
        raise ValueError(f"task {task.name} does not take a classification CSV")
    rows: list[LabeledText] = []
    with _csv_rows(path) as reader:
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"{path}: file is empty; expected a header 'text,label'")
        if [h.strip().lstrip("\ufeff") for h in header] != ["text", "label"]:
            raise DataFormatError(f"{path}:1: header is {header!r}; expected 'text,label'")
        for row in reader:
            line = reader.line_num
            if len(row) != 2:
                raise DataFormatError(f"{path}:{line}: expected 2 fields (text,label), got {len(row)}")
            text, raw = row
            if not text.strip():
                raise DataFormatError(f"{path}:{line}: empty text")
            try:
                label = task.label_id(raw)
            except ValueError:
                raise DataFormatError(
                    f"{path}:{line}: unknown {task.name} label {raw!r}; known: {', '.join(task.labels)}"
                ) from None
            rows.append(LabeledText(text, label))
    if not rows:
        raise DataFormatError(f"{path}: no rows after the header")
    return rows


def read_conll(path: str | Path, task: TaskSpec) -> list[TaggedSentence]:
    """Read `token TAG` lines with blank lines between sentences; tags must be strict IOB2."""
    path = Path(path)
    if task.kind is not TaskKind.TOKEN:
        raise ValueError(f"task {task.name} does not take a CoNLL file")
    sentences: list[tuple[list[str], list[int]]] = []
    tokens: list[str] = []
    tags: list[int] = []
    seen_types: set[str] = set()
    prev = "O"
    lines = read_lines(path)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags, prev = [], [], "O"
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataFormatError(f"{path}:{lineno}: expected 'token TAG', got {line!r}")
        token, tag = parts
        if tag not in task.labels:
            raise DataFormatError(f"{path}:{lineno}: unknown tag {tag!r}; known: {', '.join(task.labels)}")
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            raise DataFormatError(f"{path}:{lineno}: {tag} follows {prev}; IOB2 needs B-{tag[2:]} first")
        if tag != "O":
            seen_types.add(tag[2:])
        tokens.append(token)
        tags.append(task.labels.index(tag))
        prev = tag
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise DataFormatError(f"{path}: no sentences found")
    all_types = {label[2:] for label in task.labels if label != "O"}
    missing = frozenset(all_types - seen_types)
    return [TaggedSentence(tuple(t), tuple(g), missing) for t, g in sentences]


def read_texts(path: str | Path) -> list[str]:
    """The `text` column of a CSV with a header (labels, if any, are ignored): unlabelled transfer data."""
    path = Path(path)
    with _csv_rows(path) as reader:
        header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
        if "text" not in header:
            raise DataFormatError(f"{path}:1: no 'text' column in header {header!r}")
        col = header.index("text")
        texts = [row[col] for row in reader if len(row) > col and row[col].strip()]
    if not texts:
        raise DataFormatError(f"{path}: no texts")
    return texts


def read_task_file(path: str | Path, task: TaskSpec) -> list[LabeledText] | list[TaggedSentence]:
    if task.kind is TaskKind.SEQUENCE:
        return read_classification_csv(path, task)
    return read_conll(path, task)


def stratified_split(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded stratified split into (train, held-out) index lists; each class keeps its share."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be between 0 and 1")
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    train: list[int] = []
    held: list[int] = []
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        n_held = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        held.extend(idx[:n_held])
        train.extend(idx[n_held:])
    return sorted(train), sorted(held)


# The held-out split. Every trainer, scorer, card and bench takes its held-out rows from
# `holdout_split`, so "held out" means the same rows everywhere: a figure reported as held-out was
# never trained on, and changing the split is one edit here. An artifact records the fraction and seed
# it was trained with; pass that record so scorers follow the artifact, not today's defaults.
HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 13


class HasText(Protocol):
    @property
    def text(self) -> str: ...


def holdout_split(items: Sequence[LabeledText] | Sequence[HasText], record: Mapping[str, Any] | None = None, *,
                  fraction: float | None = None, seed: int | None = None) -> tuple[list[int], list[int]]:
    """(train, held-out) index lists of `items`, the project's one held-out split.

    Labelled texts are split stratified by label (each class keeps its share); anything else with a
    `text` (per-company documents) by document, on a keyed hash of the normalised text, so the same
    headline repeated never lands on both sides and adding rows moves no others. The fraction and seed
    come from `record` (an artifact's training record: `val_fraction` or `holdout_fraction`, `seed`)
    when given, else the defaults; `fraction`/`seed` override both (a selection split inside the
    training rows uses another seed).
    """
    rec = record or {}
    frac = fraction if fraction is not None else float(rec.get("val_fraction", rec.get("holdout_fraction",
                                                                                          HOLDOUT_FRACTION)))
    sd = seed if seed is not None else int(rec.get("seed", HOLDOUT_SEED))
    if items and all(isinstance(x, LabeledText) for x in items):
        labelled = cast(Sequence[LabeledText], items)
        return stratified_split([x.label for x in labelled], frac, sd)
    return document_split([x.text for x in items], frac, sd)


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the data README's rule for comparing texts (leak checks,
    de-duplication, held-out filters). The held-out split's key (`document_split`) predates it and stays
    as it is, so no document moves between the splits."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def document_split(texts: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split by document: held out when a keyed hash of the normalised text falls below `fraction`."""
    train: list[int] = []
    held: list[int] = []
    for i, text in enumerate(texts):
        key = " ".join(text.casefold().split())
        h = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
        (held if int.from_bytes(h[:8], "big") / 2**64 < fraction else train).append(i)
    return train, held
