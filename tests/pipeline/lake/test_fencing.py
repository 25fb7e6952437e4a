"""Many writers on one lake: each source's position is a compare-and-set, and a process that lost a
Kafka partition (its owner token moved on) never commits it again, even in a race with the claim."""

from __future__ import annotations

from support.lakefixtures import post

from finpulse.pipeline.lake import commit as commit_module
from finpulse.pipeline.lake import tables
from finpulse.pipeline.lake.commit import Lake, Row
from finpulse.pipeline.lake.query import run_query

SOURCE = "kafka.t.0"


def rows(start: int, stop: int) -> list[Row]:
    return [Row("enriched", post(f"p{k}", k, "neutral"), SOURCE, k, "2026-03-02") for k in range(start, stop)]


def ids(root) -> list[str]:
    return sorted(r["id"] for r in run_query(root, "select id from enriched").to_pylist())


def between_check_and_append(monkeypatch, action) -> None:
    """Run `action` once, after a commit has read the log and before it appends (the race window)."""
    real = tables.append
    pending = [action]

    def append(*args, **kwargs):
        if pending:
            pending.pop()()
        return real(*args, **kwargs)

    monkeypatch.setattr(commit_module.tables, "append", append)


def test_a_writer_whose_partition_was_claimed_by_another_commits_nothing_of_it(tmp_path):
    a, b = Lake(tmp_path), Lake(tmp_path)
    token_a = a.claim([SOURCE])[SOURCE]
    assert a.commit_bundle({SOURCE: 10}, rows(0, 10), fences={SOURCE: token_a}) == 10
    token_b = b.claim([SOURCE])[SOURCE]
    assert token_b == token_a + 1
    # the zombie's next bundle: positions nobody has written yet, still refused
    assert a.commit_bundle({SOURCE: 15}, rows(10, 15), fences={SOURCE: token_a}) == 0
    assert a.fenced == [SOURCE]
    assert b.commit_bundle({SOURCE: 20}, rows(10, 20), fences={SOURCE: token_b}) == 10
    assert b.fenced == []
    assert ids(tmp_path) == sorted(f"p{k}" for k in range(20))
    assert a.committed(SOURCE) == 20


def test_a_claim_landing_between_a_commits_check_and_its_append_still_fences_it(tmp_path, monkeypatch):
    """The zombie read the log (its token still current), then the new owner claimed the partition,
    then the zombie appended: delta-rs refuses the append (both set owner.<source>), the re-read sees
    the new token, and nothing of the zombie's lands."""
    a, b = Lake(tmp_path), Lake(tmp_path)
    token_a = a.claim([SOURCE])[SOURCE]
    between_check_and_append(monkeypatch, lambda: b.claim([SOURCE]))
    assert a.commit_bundle({SOURCE: 10}, rows(0, 10), fences={SOURCE: token_a}) == 0
    assert a.fenced == [SOURCE]
    assert ids(tmp_path) == []


def test_two_writers_committing_the_same_range_at_once_write_it_once(tmp_path, monkeypatch):
    """No fencing at all (two unfenced writers of one source): the position check is read from the
    version the commit is based on, so the loser of the race re-reads and drops the range."""
    a, b = Lake(tmp_path), Lake(tmp_path)
    a.commit_bundle({SOURCE: 5}, rows(0, 5))
    b.committed(SOURCE)  # b has read the log at this version too
    between_check_and_append(monkeypatch, lambda: Lake(tmp_path).commit_bundle({SOURCE: 10}, rows(5, 10)))
    assert a.commit_bundle({SOURCE: 10}, rows(5, 10)) == 0
    assert ids(tmp_path) == sorted(f"p{k}" for k in range(10))
    assert tables.open_table(tmp_path, "enriched").transaction_version(SOURCE) == 10
