"""The fast query path's gradient is the float64 gradient (no float32 step inside), layer by layer or whole."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attribution_oracle.attribution.projection import Projector
from attribution_oracle.attribution.query_gradients import (
    LoraQueryFeaturizer,
    decoder_stack,
    lowest_layer,
    single_thread,
)
from attribution_oracle.factory.peft_lora import attach_lora
from attribution_oracle.models import load_base_model

LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.0, "bias": "none"}


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.set_num_threads(1)
    lora = attach_lora(load_base_model("tiny:4").model, LORA, seed=1).to(torch.float64)
    with torch.no_grad():  # LoRA's B starts at zero: give it values, so every gradient is non-zero
        gen = torch.Generator().manual_seed(2)
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.05)
    return lora.eval()


def autograd_truth(model: nn.Module, names: list[str], prompt: list[int], output: list[int]) -> list[torch.Tensor]:
    """The plain float64 autograd gradient of the output's log-likelihood given the prompt, whole model."""
    params = dict(model.named_parameters())
    ids = torch.tensor([prompt + output])
    with torch.enable_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
        total = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(output).unsqueeze(-1)).sum()
        return list(torch.autograd.grad(total, [params[n] for n in names]))


def featurizer(model: nn.Module, names: list[str], prefix=()) -> LoraQueryFeaturizer:
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
    return LoraQueryFeaturizer(model, names, Projector(shapes, dim=16, seed=0), [None], None, True, prefix)


def relative_error(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, want, strict=True))


QUERIES = [(list(b"<|im_start|>user\nHow do bees winter?"), list(b" In a cluster.")),
           (list(b"Q: mites?"), list(b" Count them"))]  # fmt: skip


def test_the_float64_gradient_has_no_float32_rounding_in_it(model) -> None:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    fast = featurizer(model, names)
    assert fast.lowest_layer == 0 and fast.prefix == ()
    for prompt, output in QUERIES:
        with single_thread():
            got = fast._gradient(prompt, output, 0)
        # a float32 log-softmax (the path before) leaves errors of about 1e-7 here; float64 arithmetic about 1e-15
        assert relative_error(got, autograd_truth(model, names, prompt, output)) < 1e-12


def test_the_last_layer_gradient_reuses_the_prefix_states_and_stays_the_float64_gradient(model) -> None:
    names = [n for n, p in model.named_parameters() if p.requires_grad and ".layers.1." in n]
    prefix = tuple(b"<|im_start|>user\n")
    fast = featurizer(model, names, prefix)
    assert fast.lowest_layer == 1 and fast.prefix == prefix
    for prompt, output in QUERIES:  # the first starts with the prefix, the second does not
        with single_thread():
            got = fast._gradient(prompt, output, 0)
        assert relative_error(got, autograd_truth(model, names, prompt, output)) < 1e-12
    assert list(fast._prefix_states_at) == [0]  # computed once, for the one checkpoint
    whole = featurizer(model, names)  # no prefix: every prompt computed whole
    first = fast.features(QUERIES)
    assert torch.allclose(first, whole.features(QUERIES), rtol=0, atol=1e-12)
    assert torch.equal(first, fast.features(QUERIES))  # the reused states give the same bits every time


def test_the_layer_of_a_name_and_models_without_a_decoder_stack() -> None:
    assert lowest_layer(["m.layers.3.q.lora_A.weight", "m.layers.12.v.lora_B.weight"]) == 3
    assert lowest_layer(["head.weight", "m.layers.2.q.weight"]) == 0
    assert decoder_stack(nn.Linear(2, 2)) is None


def test_two_workers_give_the_bits_of_one_and_the_training_flag_is_restored(model) -> None:
    names = [n for n, p in model.named_parameters() if p.requires_grad and ".layers.1." in n]
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in names}
    projector = Projector(shapes, dim=16, seed=0)
    items = [*QUERIES, (list(b"<|im_start|>user\nWhy smoke?"), list(b" It calms them.")), (list(b"x"), list(b"y"))]
    one = LoraQueryFeaturizer(model, names, projector, [None], None, True, tuple(b"<|im_start|>user\n"), workers=1)
    two = LoraQueryFeaturizer(model, names, projector, [None], None, True, tuple(b"<|im_start|>user\n"), workers=2)
    model.train()
    try:
        assert torch.equal(one.features(items), two.features(items))
        assert model.training
    finally:
        model.eval()
