"""Turning labelled data into token ids and back: the sub-word label alignment lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass
class Encoded:
    """One training/eval example: token ids plus a label (int) or per-token labels."""

    input_ids: list[int]
    label: int | list[int]
    allowed_extra: tuple[int, ...] = ()  # labels also acceptable where the gold tag is "O"
    soft: tuple[float, ...] | None = None  # teacher logits (distillation); label may then be IGNORE


def encode_texts(tokenizer, texts: Sequence[str], labels: Sequence[int], max_length: int) -> list[Encoded]:
    if not texts:  # the fast tokenizers raise IndexError on an empty batch (a teacher with no transfer texts)
        return []
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    return [Encoded(ids, label) for ids, label in zip(enc["input_ids"], labels, strict=False)]


def align_word_tags(word_ids: Sequence[int | None], word_tags: Sequence[str], labels: Sequence[str]) -> tuple[list[int], list[int]]:
    """Word-level IOB2 tags -> one label per sub-word token, plus the first-token index of each word.

    The first piece of a word takes the word's tag; later pieces continue it (B-X -> I-X), so the
    model learns whole-word spans and inference can decode at token level on raw text.
    """
    token_labels: list[int] = []
    first_token: dict[int, int] = {}
    for pos, wid in enumerate(word_ids):
        if wid is None:
            token_labels.append(IGNORE)
            continue
        tag = word_tags[wid]
        if wid not in first_token:
            first_token[wid] = pos
            token_labels.append(labels.index(tag))
        else:
            token_labels.append(labels.index("I-" + tag[2:]) if tag != "O" else labels.index("O"))
    firsts = [first_token.get(w, -1) for w in range(len(word_tags))]
    return token_labels, firsts


def encode_sentences(tokenizer, sentences, labels: Sequence[str], max_length: int) -> tuple[list[Encoded], list[list[int]]]:
    """Encode TaggedSentences; returns examples and, per sentence, each word's first token (-1 if cut off)."""
    enc = tokenizer([list(s.tokens) for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
    examples: list[Encoded] = []
    firsts_all: list[list[int]] = []
    for i, sent in enumerate(sentences):
        tags = [labels[t] for t in sent.tags]
        token_labels, firsts = align_word_tags(enc.word_ids(i), tags, labels)
        extra = tuple(j for j, name in enumerate(labels) if name != "O" and name[2:] in sent.unannotated_types)
        examples.append(Encoded(enc["input_ids"][i], token_labels, extra))
        firsts_all.append(firsts)
    return examples, firsts_all


def collate(batch: Sequence[Encoded], pad_id: int, num_labels: int) -> dict[str, torch.Tensor]:
    """Pad to the longest example in the batch (dynamic padding)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[i, : len(e.input_ids)] = 1
    out = {"input_ids": ids, "attention_mask": mask}
    if isinstance(batch[0].label, int):
        out["labels"] = torch.tensor([e.label for e in batch], dtype=torch.long)
        if batch[0].soft is not None:
            out["teacher_logits"] = torch.tensor([e.soft for e in batch], dtype=torch.float32)
    else:
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        extra = torch.zeros((len(batch), num_labels), dtype=torch.bool)
        for i, e in enumerate(batch):
            if isinstance(e.label, int):
                raise ValueError("a batch mixes sequence labels (one int) with token labels (one per token)")
            labels[i, : len(e.label)] = torch.tensor(e.label)
            extra[i, list(e.allowed_extra)] = True
        out["labels"] = labels
        out["allowed_extra"] = extra
    return out
