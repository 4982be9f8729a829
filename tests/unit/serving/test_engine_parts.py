"""The engine's building blocks: prefill length groups and the preallocated key/value layer."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from attribution_oracle.serving.engine import GenerationRequest, _length_groups, _PreallocatedLayer


@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=80), waste=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_length_groups_partition_the_admitted_requests(lengths, waste):
    admitted = [(GenerationRequest(list(range(n)), None), i) for i, n in enumerate(lengths)]
    groups = _length_groups(admitted, waste)
    assert sorted(slot for group in groups for _, slot in group) == list(range(len(lengths)))
    assert all(group for group in groups)
    if waste >= 1.0:
        assert len(groups) == 1
    padded = sum(len(group) * max(len(r.prompt_ids) for r, _ in group) for group in groups)
    assert padded <= len(lengths) * max(lengths)  # grouping never pads more than one block
    if waste == 0.0 and len(lengths) >= 16 and len(set(lengths)) == 1:
        assert len(groups) == 1 and padded == sum(lengths)


def test_preallocated_layer_grows_and_equals_concatenation():
    gen = torch.Generator().manual_seed(0)
    keys, values = torch.randn(3, 2, 5, 4, generator=gen), torch.randn(3, 2, 5, 4, generator=gen)
    layer = _PreallocatedLayer(keys, values, room=1)
    want_k, want_v = keys, values
    for step in range(6):  # room for one: the buffer has to grow
        k, v = torch.randn(3, 2, 1, 4, generator=gen), torch.randn(3, 2, 1, 4, generator=gen)
        got_k, got_v = layer.update(k, v)
        want_k, want_v = torch.cat([want_k, k], dim=2), torch.cat([want_v, v], dim=2)
        assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v)
        assert layer.get_seq_length() == 6 + step
