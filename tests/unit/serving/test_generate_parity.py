"""Ours and PEFT's mixed-batch ``generate`` choose the same greedy tokens under the same stopping rule.

The benchmark once compared ours (no stop tokens: the end-of-sequence token could be chosen and generation went
on) with ``generate(min_new_tokens=G)``, which forbids that token until G tokens exist: on the tiny model, whose
flat next-token distribution often puts EOS first, a third of the requests then diverged at the first step
where EOS was the argmax. With ``min_tokens`` (Hugging Face's ``min_new_tokens`` rule) both decode the same.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from random_adapters import random_adapter_blob

from attribution_oracle.models import load_base_model, unpack_adapter
from attribution_oracle.serving.continuous_batching import BatchGenerator, GenerationRequest, stop_token_ids_of
from attribution_oracle.serving.multi_lora import LoraPool, LoraWeights

N_ADAPTERS = 3
TOKENS = 24
PAD = 257


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    base = load_base_model("tiny:0")
    blobs = [unpack_adapter(random_adapter_blob(base.model, base.sha256, 4, seed=50 + i)) for i in range(N_ADAPTERS)]
    gen = torch.Generator().manual_seed(7)
    lengths = torch.randint(3, 12, (12,), generator=gen).tolist()
    prompts = [torch.randint(0, 250, (n,), generator=gen).tolist() for n in lengths]
    return blobs, prompts


def peft_mixed(blobs, prompts, min_new_tokens: int) -> list[list[int]]:
    """PEFT mixed-batch greedy generation (left-padded, ``adapter_names``), generated ids only."""
    model = None
    for i, blob in enumerate(blobs):
        config = LoraConfig(**blob.lora_config)
        if model is None:
            model = get_peft_model(load_base_model("tiny:0").model, config, adapter_name="a0")
        else:
            model.add_adapter(f"a{i}", config)
        set_peft_model_state_dict(model, blob.state_dict, adapter_name=f"a{i}")
    model.eval()
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), PAD)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    names = [f"a{i % N_ADAPTERS}" for i in range(len(prompts))]
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=TOKENS,
            min_new_tokens=min_new_tokens,
            do_sample=False,
            pad_token_id=PAD,
            adapter_names=names,
        )
    eos = model.generation_config.eos_token_id
    results = []
    for row in out[:, width:].tolist():  # generate pads a row after its EOS: cut there
        results.append(row[: row.index(eos) + 1] if eos in row else row)
    return results


def ours(blobs, prompts, min_tokens: int) -> list[GenerationRequest]:
    model = load_base_model("tiny:0")
    weights = {str(i): LoraWeights.from_blob(str(i), b) for i, b in enumerate(blobs)}
    engine = BatchGenerator(model.model, LoraPool(model.model, mode="gather"), weights.__getitem__, PAD, max_batch=5)
    stops = stop_token_ids_of(model.model, model.tokenizer)
    requests = [
        engine.submit(GenerationRequest(p, str(i % N_ADAPTERS), TOKENS, stop_token_ids=stops, min_tokens=min_tokens))
        for i, p in enumerate(prompts)
    ]
    engine.run_until_idle()
    return requests


def test_same_tokens_when_eos_is_forbidden_until_max_tokens(setup):
    """The benchmark's rule: exactly TOKENS tokens, EOS forbidden (min = max), as ``min_new_tokens`` does."""
    blobs, prompts = setup
    got = ours(blobs, prompts, min_tokens=TOKENS)
    assert all(r.finish_reason == "length" and len(r.output_ids) == TOKENS for r in got)
    assert [r.output_ids for r in got] == peft_mixed(blobs, prompts, TOKENS)


def test_same_tokens_when_eos_stops(setup):
    """The serving rule: stop at (and include) EOS; some requests do stop early here, so the rule is exercised."""
    blobs, prompts = setup
    got = ours(blobs, prompts, min_tokens=0)
    assert any(r.finish_reason == "stop" for r in got)
    assert [r.output_ids for r in got] == peft_mixed(blobs, prompts, 0)


def test_stop_ids_follow_the_generation_config():
    """SmolLM2's GGUF tokenizer names a different EOS than its generation config: both stop a generation."""
    base = load_base_model("tiny:0")
    assert stop_token_ids_of(base.model, base.tokenizer) == {256}
    base.model.generation_config.eos_token_id = [256, 10]
    assert stop_token_ids_of(base.model, base.tokenizer) == {256, 10}
    base.model.generation_config.eos_token_id = 12
    assert stop_token_ids_of(base.model, base.tokenizer) == {256, 12}
