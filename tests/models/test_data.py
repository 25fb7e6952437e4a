"""Labelled-file readers: strict formats, errors that name the line, seeded stratified split."""

import pytest

from finpulse.models.data import DataFormatError, read_classification_csv, read_conll, stratified_split
from finpulse.models.tasks import NER, SENTIMENT


def test_csv_maps_dataset_labels_and_reads_quoted_newlines(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text('text,label\n"line one\nline two",Bearish\nok,Bullish\n')
    rows = read_classification_csv(f, SENTIMENT)
    assert [(r.text, SENTIMENT.labels[r.label]) for r in rows] == [("line one\nline two", "negative"), ("ok", "positive")]


@pytest.mark.parametrize(
    "content, where",
    [("txt,lab\nx,Bearish\n", ":1: header"), ("text,label\nx,Bearish\ny,Sideways\n", ":3: unknown sentiment label 'Sideways'"),
     ("text,label\nx,Bearish,extra\n", ":2: expected 2 fields")],
)
def test_csv_errors_name_the_line(tmp_path, content, where):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(DataFormatError, match=where):
        read_classification_csv(f, SENTIMENT)


def test_conll_reads_sentences_and_notes_unannotated_types(tmp_path):
    f = tmp_path / "n.txt"
    f.write_text("Apple B-ORG\nrose O\n\nTim B-PER\nCook I-PER\n")
    sents = read_conll(f, NER)
    assert [s.tokens for s in sents] == [("Apple", "rose"), ("Tim", "Cook")]
    assert sents[0].unannotated_types == {"LOC", "MISC"}


@pytest.mark.parametrize("content, where", [("Apple B-ORG\nrose\n", ":2: expected 'token TAG'"),
                                             ("Apple I-ORG\n", ":1: I-ORG follows O"),
                                             ("Apple B-COMPANY\n", ":1: unknown tag")])
def test_conll_errors_name_the_line(tmp_path, content, where):
    f = tmp_path / "bad.txt"
    f.write_text(content)
    with pytest.raises(DataFormatError, match=where):
        read_conll(f, NER)


def test_stratified_split_is_seeded_and_keeps_class_shares():
    labels = [0] * 90 + [1] * 10
    tr, held = stratified_split(labels, 0.2, seed=3)
    assert stratified_split(labels, 0.2, seed=3) == (tr, held)
    assert sorted(tr + held) == list(range(100))
    assert sum(labels[i] == 1 for i in held) == 2 and len(held) == 20


def test_holdout_split_is_the_one_split_for_labelled_texts_and_documents():
    from finpulse.models.data import HOLDOUT_FRACTION, HOLDOUT_SEED, LabeledText, holdout_split, stratified_split
    from finpulse.models.spans import EntityDoc

    rows = [LabeledText(f"text {i}", i % 3) for i in range(300)]
    # labelled texts: stratified, with the artifact's record deciding fraction and seed
    assert holdout_split(rows) == stratified_split([r.label for r in rows], HOLDOUT_FRACTION, HOLDOUT_SEED)
    assert holdout_split(rows, {"val_fraction": 0.2, "seed": 5}) == stratified_split([r.label for r in rows], 0.2, 5)
    assert len(holdout_split(rows)[1]) == 30
    # documents: by text, so a repeated headline lands on one side only, and adding rows moves no others
    docs = [EntityDoc(id=str(i), text=f"Headline number {i % 250}", entities=()) for i in range(500)]
    train, held = holdout_split(docs)
    held_texts = {docs[i].text for i in held}
    assert held_texts.isdisjoint(docs[i].text for i in train)
    assert 10 < len(held_texts) < 45  # ~10% of 250 distinct texts
    more = docs + [EntityDoc(id=f"a{i}", text=f"Another {i}", entities=()) for i in range(50)]
    assert set(holdout_split(more)[1]) >= set(held)
    assert holdout_split(docs, {"holdout_fraction": 0.1, "seed": 13}) == (train, held)
