"""The bfloat16 serving base: LoRA deltas stay float32, logits stay close, greedy tokens stable within tolerance."""

from __future__ import annotations

import pytest
import torch
from random_adapters import random_adapter_blob
from torch import nn

from attribution_oracle.models import load_base_model, unpack_adapter
from attribution_oracle.serving.continuous_batching import BatchGenerator, GenerationRequest
from attribution_oracle.serving.multi_lora import LoraPool, LoraWeights
from attribution_oracle.serving.quantised import LowPrecisionLinear, quantise_base, resolve_mode

PROMPTS = ["The bees", "Honey is made from nectar by", "Hi", "A hive in winter keeps warm", "x", "Queen"]
STEPS = 6
GAP = 0.1  # a greedy token may only change where the float model's top-2 logits are closer than this


def run(model, adapters, tok, quantise: str) -> list[GenerationRequest]:
    applied = quantise_base(model, quantise)
    assert applied == quantise
    weights = {str(i): LoraWeights.from_blob(str(i), a) for i, a in enumerate(adapters)}
    engine = BatchGenerator(model, LoraPool(model, capacity=4), weights.__getitem__, pad_token_id=257, max_batch=8)
    requests = [
        engine.submit(GenerationRequest(tok(p).input_ids, str(i % len(adapters)), max_tokens=STEPS, keep_logits=True))
        for i, p in enumerate(PROMPTS)
    ]
    engine.run_until_idle()
    assert all(r.error is None and len(r.output_ids) == STEPS for r in requests), [
        (r.error, r.output_ids) for r in requests
    ]
    return requests


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    base = load_base_model("tiny:0")
    blobs = [random_adapter_blob(base.model, base.sha256, 8, ("q_proj", "v_proj"), seed=i) for i in range(3)]
    adapters = [unpack_adapter(b) for b in blobs]
    exact = run(load_base_model("tiny:0").model, adapters, base.tokenizer, "none")
    low = load_base_model("tiny:0").model
    return exact, run(low, adapters, base.tokenizer, "bf16"), low


def test_every_base_linear_is_bfloat16_and_the_lora_deltas_stay_float32(runs) -> None:
    _, _, model = runs
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    low = [m for m in model.modules() if isinstance(m, LowPrecisionLinear)]
    assert not linears and len(low) == 2 * 7 + 1  # 2 layers x (q, k, v, o, gate, up, down) + the LM head
    assert all(m.weight.dtype == torch.bfloat16 for m in low)
    wrapped = [m for m in model.modules() if type(m).__name__ == "MultiLoraLinear"]
    assert wrapped and all(isinstance(w.base, LowPrecisionLinear) and w.lora_a.dtype == torch.float32 for w in wrapped)
    assert model.get_input_embeddings().weight.dtype == torch.float32


def test_bfloat16_logits_stay_close_to_float32(runs) -> None:
    exact, low, _ = runs
    for a, b in zip(exact, low, strict=True):
        first_a, first_b = a.logits[0], b.logits[0]  # same prompt, so the first step is directly comparable
        scale = first_a.abs().max()
        assert (first_a - first_b).abs().max() <= 0.03 * scale
        assert first_a.dtype == first_b.dtype == torch.float32


def test_greedy_tokens_only_change_at_float_near_ties(runs) -> None:
    exact, low, _ = runs
    same = 0
    for a, b in zip(exact, low, strict=True):
        if a.output_ids == b.output_ids:
            same += 1
            continue
        k = next(i for i, (x, y) in enumerate(zip(a.output_ids, b.output_ids, strict=True)) if x != y)
        top2 = torch.topk(a.logits[k], 2).values
        assert float(top2[0] - top2[1]) < GAP, f"token {k} changed although float32's top-2 gap is {top2}"
    assert same >= len(exact) - 1


def test_auto_keeps_float32_where_bfloat16_would_not_win() -> None:
    assert resolve_mode("auto", "cpu", hidden_size=64) == "none"  # the tiny model: casts would dominate
    assert resolve_mode("none", "cpu") == "none" and resolve_mode("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="quantisation mode"):
        resolve_mode("int4", "cpu")
    model = load_base_model("tiny:0").model
    assert quantise_base(model, "auto") == "none" and any(isinstance(m, nn.Linear) for m in model.modules())


def test_int8_linear_tracks_the_float_linear_even_with_an_outlier_channel() -> None:
    from attribution_oracle.serving.quantised import Int8Linear, _smoothing

    gen = torch.Generator().manual_seed(0)
    linear = nn.Linear(96, 40, bias=True).requires_grad_(False)
    x = torch.randn(2, 7, 96, generator=gen)
    x[..., 5] *= 60.0  # one activation channel 60x larger, as in real LLMs
    exact = linear(x)
    maxima = x.reshape(-1, 96).abs().amax(0)
    smoothed = Int8Linear(linear, _smoothing(maxima, linear.weight))
    plain = Int8Linear(linear, torch.ones(96))
    error = lambda layer: float((layer(x) - exact).norm() / exact.norm())  # noqa: E731
    assert smoothed(x).shape == exact.shape and smoothed(x).dtype == torch.float32
    assert error(smoothed) < 0.02
    assert error(smoothed) < error(plain)  # smoothing moves the outlier into the weights


def test_int8_base_serves_with_float32_lora_deltas_and_needs_a_tokenizer() -> None:
    from attribution_oracle.serving.quantised import Int8Linear

    torch.set_num_threads(1)
    base = load_base_model("tiny:0")
    with pytest.raises(ValueError, match="tokenizer"):
        quantise_base(load_base_model("tiny:0").model, "int8")
    assert quantise_base(base.model, "int8", base.tokenizer) == "int8"
    int8 = [m for m in base.model.modules() if isinstance(m, Int8Linear)]
    assert len(int8) == 2 * 7 and isinstance(base.model.get_output_embeddings(), LowPrecisionLinear)
    float_model = load_base_model("tiny:0").model  # adapters are made against the float base's linears
    blobs = [random_adapter_blob(float_model, base.sha256, 8, ("q_proj", "v_proj"), seed=i) for i in range(2)]
    weights = {str(i): LoraWeights.from_blob(str(i), unpack_adapter(b)) for i, b in enumerate(blobs)}
    engine = BatchGenerator(base.model, LoraPool(base.model, capacity=4), weights.__getitem__, pad_token_id=257)
    done = [engine.submit(GenerationRequest(base.tokenizer(p).input_ids, str(i % 2), max_tokens=4)) for i, p in
            enumerate(PROMPTS)]  # fmt: skip
    engine.run_until_idle()
    assert all(r.error is None and len(r.output_ids) == 4 for r in done)
    wrapped = [m for m in base.model.modules() if type(m).__name__ == "MultiLoraLinear"]
    assert wrapped and all(isinstance(w.base, Int8Linear) and w.lora_a.dtype == torch.float32 for w in wrapped)


def test_auto_takes_int8_for_a_big_model_on_a_cpu_with_int8_dot_products() -> None:
    from attribution_oracle.serving.quantised import _fast_bf16, _fast_int8

    cpu = torch.device("cpu")
    expected = "int8" if _fast_int8(cpu) else ("bf16" if _fast_bf16(cpu) else "none")
    assert resolve_mode("auto", "cpu", hidden_size=576) == expected
    assert resolve_mode("auto", "cpu", hidden_size=64) == "none"


def test_int8_falls_back_to_bfloat16_without_the_onednn_int8_kernel() -> None:
    assert resolve_mode("int8", "cpu") == "int8"
    assert resolve_mode("int8", "cuda") == "bf16"  # oneDNN's int8 GEMM is CPU-only
