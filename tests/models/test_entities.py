from finpulse.models.engine.entities import TokenPrediction as T
from finpulse.models.engine.entities import decode_entities, merge_windows

TEXT = "Tim Cook said Apple's iPhone sales in New York rose."


def tok(s, e, word, label, score=0.9):
    return T(s, e, word, label, score)


def test_spans_index_the_original_text():
    toks = [tok(0, 3, 0, "B-PER"), tok(4, 8, 1, "I-PER"), tok(9, 13, 2, "O"), tok(14, 19, 3, "B-ORG"),
            tok(19, 20, 4, "O"), tok(20, 21, 5, "O"), tok(38, 41, 8, "B-LOC"), tok(42, 46, 9, "I-LOC")]
    ents = decode_entities(TEXT, toks)
    assert [(e.text, e.type) for e in ents] == [("Tim Cook", "PER"), ("Apple", "ORG"), ("New York", "LOC")]
    assert all(TEXT[e.start:e.end] == e.text for e in ents)


def test_subword_pieces_follow_their_word_and_stray_i_opens_an_entity():
    text = "Nvidia shares"
    toks = [tok(0, 2, 0, "I-ORG"), tok(2, 6, 0, "O", 0.4), tok(7, 13, 1, "O")]
    ents = decode_entities(text, toks)
    assert [(e.text, e.type) for e in ents] == [("Nvidia", "ORG")]
    assert ents[0].score == 0.65


def test_type_change_splits_entities():
    text = "Apple Paris"
    ents = decode_entities(text, [tok(0, 5, 0, "B-ORG"), tok(6, 11, 1, "I-LOC")])
    assert [(e.text, e.type) for e in ents] == [("Apple", "ORG"), ("Paris", "LOC")]


def test_overlapping_windows_keep_the_most_central_prediction():
    w1 = [tok(0, 1, 0, "O"), tok(2, 3, 1, "O"), tok(4, 5, 2, "B-ORG")]  # token at 4 is on w1's edge
    w2 = [tok(2, 3, 1, "O"), tok(4, 5, 2, "B-PER"), tok(6, 7, 3, "O")]  # and central in w2
    merged = merge_windows([w1, w2])
    assert [t.start for t in merged] == [0, 2, 4, 6]
    assert merged[2].label == "B-PER"


def test_punctuation_is_trimmed_and_a_lone_dollar_is_dropped():
    text = "$CVX (Reuters) $ x"
    toks = [tok(0, 1, 0, "B-ORG"), tok(1, 4, 1, "I-ORG"), tok(5, 6, 2, "B-ORG"), tok(6, 13, 3, "I-ORG"),
            tok(13, 14, 4, "I-ORG"), tok(15, 16, 5, "B-ORG"), tok(17, 18, 6, "O")]
    ents = decode_entities(text, toks)
    assert [(e.text, e.start, e.end) for e in ents] == [("CVX", 1, 4), ("Reuters", 6, 13)]
