"""Teacher soft labels (models/training/soft_labels.py): resumable chunks, refusal to mix inputs, text readers.

The teacher here is a plain function (a stand-in for the model: what is tested is the bookkeeping)."""

from __future__ import annotations

import json

import pytest

from finpulse.models.training.soft_labels import (
    LabellingMismatch,
    SourceText,
    chunk_name,
    corpus,
    label_corpus,
    read_soft_labels,
)

LABELS = ["negative", "neutral", "positive"]


class Teacher:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.seen += texts
        return [[float(len(t)), 0.0, -1.0] for t in texts]


def texts(n: int) -> list[SourceText]:
    return [SourceText("f.csv", f"text number {i}") for i in range(n)]


def test_texts_with_unicode_line_separators_read_back_whole(tmp_path):
    rows = [SourceText("f.csv", "first\u2028line"), SourceText("f.csv", "next\x85one\x1cend")]
    label_corpus(rows, tmp_path, "t1", Teacher(), LABELS, chunk_size=4)
    assert [r["text"] for r in read_soft_labels(tmp_path)] == [r.text for r in rows]


def test_a_rerun_continues_with_the_chunks_not_done(tmp_path):
    rows = texts(10)
    first = Teacher()
    m = label_corpus(rows, tmp_path, "t1", first, LABELS, chunk_size=4, max_chunks=2)
    assert m["done"] == [0, 1] and m["labelled"] == 8 and len(first.seen) == 8
    again = Teacher()
    m = label_corpus(rows, tmp_path, "t1", again, LABELS, chunk_size=4)
    assert again.seen == ["text number 8", "text number 9"]  # only the last chunk
    assert m["done"] == [0, 1, 2] and m["labelled"] == 10 and m["texts_per_s"] > 0
    out = read_soft_labels(tmp_path)
    assert [r["text"] for r in out] == [r.text for r in rows]
    assert out[3]["logits"] == [13.0, 0.0, -1.0] and out[3]["source"] == "f.csv"


def test_a_chunk_cut_off_midway_is_labelled_again(tmp_path):
    rows = texts(8)
    label_corpus(rows, tmp_path, "t1", Teacher(), LABELS, chunk_size=4)
    (tmp_path / chunk_name(1)).unlink()  # as if the run died between the chunk and the manifest
    (tmp_path / (chunk_name(1) + ".tmp")).write_text("{half a line")
    again = Teacher()
    label_corpus(rows, tmp_path, "t1", again, LABELS, chunk_size=4)
    assert again.seen == [r.text for r in rows[4:]]
    assert len(read_soft_labels(tmp_path)) == 8


def test_other_texts_or_another_teacher_are_refused(tmp_path):
    label_corpus(texts(5), tmp_path, "t1", Teacher(), LABELS, chunk_size=4)
    with pytest.raises(LabellingMismatch, match="fingerprint"):
        label_corpus(texts(6), tmp_path, "t1", Teacher(), LABELS, chunk_size=4)
    with pytest.raises(LabellingMismatch, match="teacher"):
        label_corpus(texts(5), tmp_path, "t2", Teacher(), LABELS, chunk_size=4)


def test_corpus_reads_each_kind_of_file_and_drops_repeats(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"Shares  fall",Bearish\nsecond,Neutral\n')
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "1", "text": "shares fall", "entities": []}) + "\n")
    (tmp_path / "c.txt").write_text("Apple B-ORG\nrises O\n\nBank B-ORG\nfalls O\n")
    got = corpus([tmp_path / "a.csv", tmp_path / "b.jsonl", tmp_path / "c.txt"])
    assert [(t.source, t.text) for t in got] == [
        ("a.csv", "Shares  fall"),
        ("a.csv", "second"),
        ("c.txt", "Apple rises"),
        ("c.txt", "Bank falls"),
    ]
