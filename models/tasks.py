"""The three tasks as data: one code path serves all of them, configured by a TaskSpec."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class TaskKind(str, Enum):
    SEQUENCE = "sequence"  # one label per text (mean-pooled encoder output)
    TOKEN = "token"  # one IOB2 tag per sub-word token
    SPAN = "span"  # one label per mention (character span) of a text: per-company sentiment


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: TaskKind
    labels: tuple[str, ...]
    # Raw dataset label (lower-cased) -> our label; lets source datasets keep their own names.
    aliases: dict[str, str] = field(default_factory=dict)

    def label_id(self, raw: str) -> int:
        """Map a raw dataset label to its index; raises KeyError for unknown labels."""
        name = self.aliases.get(raw.strip().lower(), raw.strip())
        return self.labels.index(name)


SENTIMENT = TaskSpec(
    name="sentiment",
    kind=TaskKind.SEQUENCE,
    labels=("negative", "neutral", "positive"),
    aliases={
        "bearish": "negative",
        "bullish": "positive",
        "neutral": "neutral",
        "negative": "negative",
        "positive": "positive",
    },
)

# Order follows the dataset card's label ids (0..19) so ids stay comparable with it.
TOPIC = TaskSpec(
    name="topic",
    kind=TaskKind.SEQUENCE,
    labels=(
        "Analyst Update",
        "Fed | Central Banks",
        "Company | Product News",
        "Treasuries | Corporate Debt",
        "Dividend",
        "Earnings",
        "Energy | Oil",
        "Financials",
        "Currencies",
        "General News | Opinion",
        "Gold | Metals | Materials",
        "IPO",
        "Legal | Regulation",
        "M&A | Investments",
        "Macro",
        "Markets",
        "Politics",
        "Personnel Change",
        "Stock Commentary",
        "Stock Movement",
    ),
)

ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")
NER = TaskSpec(
    name="ner",
    kind=TaskKind.TOKEN,
    labels=("O",) + tuple(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")),
)

# Per-company sentiment: one label per company mention, read from the shared encoder's token states.
ENTITY_SENTIMENT = TaskSpec(name="entity_sentiment", kind=TaskKind.SPAN, labels=SENTIMENT.labels,
                            aliases=SENTIMENT.aliases)

# Per-company sentiment from a target-marked input (models/engine/targets.py): a sequence head on its own small
# model, run only for texts that name several companies. Trained from the entity-level JSONL files.
ENTITY_TARGET = TaskSpec(name="entity_target", kind=TaskKind.SEQUENCE, labels=SENTIMENT.labels,
                         aliases=SENTIMENT.aliases)

TASKS: dict[str, TaskSpec] = {t.name: t for t in (SENTIMENT, TOPIC, NER, ENTITY_TARGET)}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
