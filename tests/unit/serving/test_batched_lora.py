"""The batched multi-adapter path equals running each adapter alone in PEFT.

Tolerance: logits agree within 1e-4 absolute (float32; the batched path differs only by padding and the
order of float additions), and greedy tokens are identical.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from random_adapters import random_adapter_blob

from attribution_oracle.models import load_base_model, unpack_adapter
from attribution_oracle.serving.continuous_batching import BatchGenerator, GenerationRequest
from attribution_oracle.serving.multi_lora import LoraPool, LoraWeights, UnsupportedAdapterError

ATOL = 1e-4
# (rank, targets) per adapter: different ranks and different target modules in one batch
SPECS = [
    (2, ("q_proj", "v_proj")),
    (8, ("q_proj", "v_proj")),
    (4, ("k_proj", "o_proj", "down_proj")),
    (16, ("gate_proj", "up_proj", "q_proj")),
]
PROMPTS = ["The bees", "Honey is made from nectar by", "Hi", "A hive in winter keeps warm", "x", "Queen"]


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    base = load_base_model("tiny:0")
    blobs = [random_adapter_blob(base.model, base.sha256, r, t, seed=i) for i, (r, t) in enumerate(SPECS)]
    return base, [unpack_adapter(b) for b in blobs]


def peft_reference(adapters, adapter_index: int, prompt_ids: list[int], steps: int):
    """Greedy decoding with one adapter alone in a PeftModel (full recompute each step): tokens and logits."""
    model = load_base_model("tiny:0").model
    blob = adapters[adapter_index]
    config = LoraConfig(**{k: v for k, v in blob.lora_config.items()})
    peft_model = get_peft_model(model, config)
    set_peft_model_state_dict(peft_model, blob.state_dict)
    peft_model.eval()
    ids = list(prompt_ids)
    logits_seq = []
    with torch.inference_mode():
        for _ in range(steps):
            logits = peft_model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            logits_seq.append(logits)
            ids.append(int(logits.argmax()))
    return ids[len(prompt_ids) :], logits_seq


@pytest.mark.parametrize("mode", ["gather", "segment"])
def test_mixed_batch_matches_peft_per_adapter(setup, mode):
    base, adapters = setup
    weights = {str(i): LoraWeights.from_blob(str(i), a) for i, a in enumerate(adapters)}
    model = load_base_model("tiny:0").model
    pool = LoraPool(model, capacity=2, mode=mode)  # small: forces the slots to grow
    engine = BatchGenerator(model, pool, weights.__getitem__, pad_token_id=257, max_batch=4)
    tok = base.tokenizer
    # different prompt lengths, different max_tokens (rows leave at different steps), adapters reused, one without
    plan = [(0, 0, 6), (1, 1, 3), (2, 2, 5), (3, 3, 7), (4, 1, 4), (5, None, 5), (1, 3, 2)]
    requests = []
    for prompt_index, adapter_index, steps in plan:
        requests.append(
            engine.submit(
                GenerationRequest(
                    prompt_ids=tok(PROMPTS[prompt_index]).input_ids,
                    adapter_hash=None if adapter_index is None else str(adapter_index),
                    max_tokens=steps,
                    keep_logits=True,
                )
            )
        )
    engine.step()
    # continuous batching: a request arriving mid-generation joins the running batch
    late = engine.submit(GenerationRequest(tok(PROMPTS[2]).input_ids, "0", max_tokens=4, keep_logits=True))
    engine.run_until_idle()
    for (prompt_index, adapter_index, steps), request in [*zip(plan, requests, strict=True), ((2, 0, 4), late)]:
        assert request.done.is_set() and request.error is None
        prompt_ids = tok(PROMPTS[prompt_index]).input_ids
        if adapter_index is None:
            with torch.inference_mode():
                model_ref = load_base_model("tiny:0").model
                ids, ref_logits = list(prompt_ids), []
                for _ in range(steps):
                    logit = model_ref(input_ids=torch.tensor([ids])).logits[0, -1].float()
                    ref_logits.append(logit)
                    ids.append(int(logit.argmax()))
                ref_tokens = ids[len(prompt_ids) :]
        else:
            ref_tokens, ref_logits = peft_reference(adapters, adapter_index, prompt_ids, steps)
        assert request.output_ids == ref_tokens
        for got, want in zip(request.logits, ref_logits, strict=True):
            torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_adapters_change_the_output(setup):
    base, adapters = setup
    prompt = base.tokenizer(PROMPTS[1]).input_ids
    plain = load_base_model("tiny:0").model(input_ids=torch.tensor([prompt])).logits[0, -1]
    _, adapted = peft_reference(adapters, 1, prompt, 1)
    assert (plain - adapted[0]).abs().max() > 1e-3


def test_pool_recycles_idle_slots_and_refuses_unknown_modules(setup):
    base, adapters = setup
    model = load_base_model("tiny:0").model
    pool = LoraPool(model, capacity=2)
    first = pool.load(LoraWeights.from_blob("a", adapters[0]))
    second = pool.load(LoraWeights.from_blob("b", adapters[1]))
    assert first == second == 1 and list(pool.slot_of) == ["b"]  # capacity 2 = zero slot + one
    pool.pin([second])
    third = pool.load(LoraWeights.from_blob("c", adapters[2]))
    assert pool.capacity == 4 and third not in (0, second)  # the pinned slot was kept, the pool grew
    bad = LoraWeights("bad", 2, {"model.layers.9.self_attn.q_proj": (torch.zeros(2, 64), torch.zeros(64, 2))})
    with pytest.raises(UnsupportedAdapterError, match="no module"):
        pool.load(bad)
    emb = LoraWeights("emb", 2, {"model.embed_tokens": (torch.zeros(2, 258), torch.zeros(64, 2))})
    with pytest.raises(UnsupportedAdapterError, match="linears only"):
        pool.load(emb)
