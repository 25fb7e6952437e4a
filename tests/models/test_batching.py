from hypothesis import given
from hypothesis import strategies as st

from finpulse.models.engine.batching import plan_batches


def test_batches_respect_the_padded_token_budget():
    lengths = [10, 200, 12, 11, 180, 9, 50]
    batches = plan_batches(lengths, token_budget=400, max_batch=64)
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 400 or len(b) == 1
    # short texts are grouped together, long ones apart; the 50-token text would fit the budget with
    # the four short ones (5 x 50 = 250), but pad 92 real tokens to 250: it goes alone
    assert [sorted(b) for b in batches] == [[0, 2, 3, 5], [6], [1, 4]]  # 2 x 200 fits 400, pads 10%
    assert [sorted(b) for b in plan_batches(lengths, 399, 64)][2:] == [[4], [1]]
    # without the padding bound only the budget cuts
    assert [sorted(b) for b in plan_batches(lengths, 400, 64, max_padding=float("inf"))] == [[0, 2, 3, 5, 6], [1, 4]]


def test_a_small_call_is_not_padded_to_its_longest_text():
    """A bundle of mixed lengths far under the budget: cut by padding, not sent as one batch."""
    lengths = [20] * 30 + [120] * 2  # 32 texts: 32 x 120 = 3,840 padded tokens fit 8,192
    batches = plan_batches(lengths, 8192, 256)
    assert [len(b) for b in batches] == [30, 2]
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded == sum(lengths)  # no padding at all, against 3,840 for 840 real tokens before


@given(st.lists(st.integers(1, 512), max_size=300), st.integers(64, 4096), st.integers(1, 64))
def test_every_index_is_planned_exactly_once(lengths, budget, max_batch):
    batches = plan_batches(lengths, budget, max_batch)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(b) <= max_batch for b in batches)
    assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget for b in batches)
    # padding over 25% of the real tokens only where the batch was small before its longest text joined
    for b in batches:
        real, padded = sum(lengths[i] for i in b), len(b) * max(lengths[i] for i in b)
        before = (len(b) - 1) * max((lengths[i] for i in b[:-1]), default=0)
        assert padded <= 1.25 * real or before < budget // 16
