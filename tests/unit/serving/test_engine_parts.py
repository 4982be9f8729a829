"""The engine's building blocks: prefill length groups and the preallocated key/value layer."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from attribution_oracle.serving.continuous_batching import GenerationRequest, _length_groups
from attribution_oracle.serving.kv_cache import PreallocatedLayer


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
    layer = PreallocatedLayer(keys, values, room=1)
    want_k, want_v = keys, values
    for step in range(6):  # room for one: the buffer has to grow
        k, v = torch.randn(3, 2, 1, 4, generator=gen), torch.randn(3, 2, 1, 4, generator=gen)
        got_k, got_v = layer.update(k, v)
        want_k, want_v = torch.cat([want_k, k], dim=2), torch.cat([want_v, v], dim=2)
        assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v)
        assert layer.get_seq_length() == 6 + step


def test_folded_gqa_attention_equals_hf_sdpa():
    """One decode step with the query heads folded onto their key/value heads equals HF's sdpa (float noise)."""
    from attribution_oracle.models import load_base_model
    from attribution_oracle.serving.gqa_attention import NAME, use_folded_gqa

    torch.set_num_threads(1)
    model = load_base_model("tiny:0").model  # 4 query heads over 2 key/value heads
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 250, (3, 6), generator=gen)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, :2] = 0
    step = torch.tensor([[5], [6], [7]])
    positions = (mask.cumsum(-1) - 1)[:, -1:]

    def decode_logits() -> torch.Tensor:
        with torch.inference_mode():
            cache = model(input_ids=ids, attention_mask=mask[:, :6], use_cache=True).past_key_values
            four_d = mask.bool()[:, None, None, :]
            return model(input_ids=step, attention_mask=four_d, position_ids=positions, past_key_values=cache).logits

    plain = decode_logits()
    assert use_folded_gqa(model) and model.config._attn_implementation == NAME
    torch.testing.assert_close(decode_logits(), plain, atol=1e-5, rtol=0)
