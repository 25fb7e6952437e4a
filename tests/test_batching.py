from hypothesis import given
from hypothesis import strategies as st

from finpulse.models.batching import plan_batches


def test_batches_respect_the_padded_token_budget():
    lengths = [10, 200, 12, 11, 180, 9, 50]
    batches = plan_batches(lengths, token_budget=400, max_batch=64)
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 400 or len(b) == 1
    # short texts are grouped together, long ones apart
    assert [sorted(b) for b in batches] == [[0, 2, 3, 5, 6], [1, 4]]  # 5 x 50 and 2 x 200 both fit 400
    assert [sorted(b) for b in plan_batches(lengths, 399, 64)][1:] == [[4], [1]]


@given(st.lists(st.integers(1, 512), max_size=300), st.integers(64, 4096), st.integers(1, 64))
def test_every_index_is_planned_exactly_once(lengths, budget, max_batch):
    batches = plan_batches(lengths, budget, max_batch)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(b) <= max_batch for b in batches)
    assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget for b in batches)
