"""A low-precision serving base: the base model's linear layers in bfloat16, LoRA deltas in float32.

Serving is bound by the base model's own matmuls (``benchmarks/serving.py``: our engine runs at most at the bare
base model's speed), so the base's linears (the LM head included) are swapped for ``LowPrecisionLinear`` modules
holding bfloat16 weights; the LoRA wrappers (``serving.multi_lora.MultiLoraLinear``) wrap them like any linear and add
each row's adapter delta in full precision. Embeddings, norms and attention stay in the model's dtype; activations
are cast to bfloat16 for each base matmul and the result back. The weights are converted once, in place.

Why bfloat16 and not int8: torch's int8 CPU paths were measured on SmolLM2-135M with held-out text (the demo
corpus): dynamic int8 (``quantized::linear_dynamic``, int8 activations) raised perplexity from 44.6 to 158 (80.6
with the LM head left in float32), far past the 2% budget, because of activation outliers; weight-only int8
(``torch._weight_int8pack_mm``) keeps accuracy but has no fast kernel on this CPU (hundreds of times slower
than float32). bfloat16 weights changed perplexity by -0.02% and run on oneDNN's BF16 kernels (AVX512-BF16/AMX)
on CPU and natively on CUDA.

Modes: ``bf16``; ``none`` (float32, the PEFT-parity path); ``int8``; ``auto`` = the fastest that wins: for a
model big enough for the matmuls to dominate the casts (hidden size >= ``AUTO_MIN_HIDDEN``), ``int8`` on a CPU with
int8 dot-product instructions (VNNI/AMX) when a tokenizer is given for its calibration, else ``bf16`` where the
device has fast bfloat16 matmuls (CUDA with BF16 support, or a CPU where oneDNN reports BF16 support), else
``none``. ``benchmarks/serving.py`` on SmolLM2 at 64 adapters: int8 3.8x PEFT mixed (bf16 had 1.8-2.2x).

``int8`` (CPU with oneDNN): the decoder's linears as ``Int8Linear``, W8A8 through oneDNN's
``qlinear_pointwise`` (VNNI): int8 weights with one scale per output channel, activations quantised per call with
one symmetric scale per token (row), and SmoothQuant-style smoothing per input channel
(``s = max|x|^0.5 / max|w|^0.5``, calibrated once on ``CALIBRATION_TEXT`` when the base is quantised) that moves
activation outliers into the weights. The LM head stays bfloat16. ``benchmarks/serving_kernels.py`` measured, on
SmolLM2 with the demo corpus: per-tensor int8 activations +84% perplexity, per-token +4.2%, per-token with smoothing
+1.5% (the 2% budget holds only with both). Where oneDNN's int8 kernel is missing (CUDA, other builds) ``int8``
falls back to ``bf16``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CALIBRATION_TEXT", "MODES", "Int8Linear", "LowPrecisionLinear", "quantise_base", "resolve_mode"]

MODES = ("auto", "bf16", "int8", "none")
AUTO_MIN_HIDDEN = 256
SMOOTHING_ALPHA = 0.5
# Plain English prose for the int8 smoothing's activation maxima (the outlier channels are the model's own, not the
# text's); fixed, so every server quantises a base the same way.
CALIBRATION_TEXT = (
    "The history of a city is written in its streets. Markets grew where rivers met, and bridges followed the "
    "traders. In the spring the farmers brought honey, wool and grain; in the autumn the ships carried cloth and "
    "salt down to the sea. Children learned to count with the merchants' coins, and the old clock on the square "
    "told everyone when the gates would close. Scientists later measured the river's flow, the rainfall of each "
    "season and the number of bees in the hills, and they wrote their results in careful tables: 12 hives, 340 "
    "kilograms of honey, 7 new wells. Question: why did the town prosper? Answer: because its people shared what "
    "they knew, kept good records and paid each other fairly for their work.\n\n"
    "def total(values):\n    return sum(v for v in values if v > 0)\n"
)


def _fast_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        try:
            return bool(check()) if check is not None else False
        except RuntimeError:
            return False
    return False


def _int8_kernel(device: torch.device) -> bool:
    return device.type == "cpu" and hasattr(torch.ops, "onednn") and torch.backends.mkldnn.is_available()


@cache
def _cpu_has_int8_dot_products() -> bool:
    """Whether the CPU has int8 dot-product instructions (VNNI or AMX), which make oneDNN's int8 GEMM fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def _fast_int8(device: torch.device) -> bool:
    return _int8_kernel(device) and _cpu_has_int8_dot_products()


def resolve_mode(mode: str, device: torch.device | str, hidden_size: int | None = None) -> str:
    """The concrete mode (``bf16``, ``int8`` or ``none``) for ``mode`` on ``device`` (``auto`` also needs the
    hidden size: ``int8`` on a CPU with int8 dot products, else ``bf16`` where that is fast, else ``none``;
    ``int8`` without oneDNN's int8 kernel falls back to ``bf16``)."""
    if mode not in MODES:
        raise ValueError(f"quantisation mode must be one of {MODES}, not {mode!r}")
    if mode == "int8":
        return "int8" if _int8_kernel(torch.device(device)) else "bf16"
    if mode == "auto":
        big = hidden_size is None or hidden_size >= AUTO_MIN_HIDDEN
        if big and _fast_int8(torch.device(device)):
            return "int8"
        return "bf16" if big and _fast_bf16(torch.device(device)) else "none"
    return mode


class LowPrecisionLinear(nn.Module):
    """A frozen ``nn.Linear`` whose weight is kept in bfloat16; input and output keep the original dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        """Convert ``linear``'s weight to bfloat16 (the float weight is not kept; the bias stays as it is)."""
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.out_dtype = weight.dtype
        self.register_buffer("weight", weight.to(torch.bfloat16), persistent=False)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` with a bfloat16 matmul, returned in the original weight dtype."""
        out = F.linear(x.to(torch.bfloat16), self.weight).to(self.out_dtype)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=bfloat16"


class Int8Linear(nn.Module):
    """A frozen ``nn.Linear`` as W8A8 int8 (module docstring): per-channel weights, per-token smoothed activations."""

    def __init__(self, linear: nn.Linear, smoothing: torch.Tensor) -> None:
        """Quantise ``linear``'s weight times ``smoothing`` (per input channel); inputs are divided by it."""
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.out_dtype = weight.dtype
        smoothed = weight.float() * smoothing[None, :]
        scale = smoothed.abs().amax(1).clamp_min(1e-12) / 127
        qweight = torch.round(smoothed / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.packed = torch.ops.onednn.qlinear_prepack(qweight, None)
        self.register_buffer("inverse_smoothing", (1.0 / smoothing).float(), persistent=False)
        self.register_buffer("weight_scale", scale.float(), persistent=False)
        self.register_buffer("zero_points", torch.zeros(self.out_features, dtype=torch.int64), persistent=False)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` in int8: each row quantised with its own symmetric scale, applied to the output row."""
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float() * self.inverse_smoothing
        scales = rows.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127
        quantised = (torch.round(rows / scales) + 128).to(torch.uint8)  # int8 as uint8 with zero point 128
        out = torch.ops.onednn.qlinear_pointwise(
            quantised, 1.0, 128, self.packed, self.weight_scale, self.zero_points, None, 1.0, 0, torch.float32,
            "none", [], "",
        )  # fmt: skip
        out = out * scales
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], self.out_features).to(self.out_dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=int8, activations=int8"


def _input_maxima(model: nn.Module, names: list[str], calibration_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per input channel ``max |x|`` of each named linear over one forward of ``calibration_ids``."""
    maxima: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def hook(name: str):
        def record(_module, args, _out) -> None:
            seen = args[0].detach().reshape(-1, args[0].shape[-1]).abs().amax(0).float()
            maxima[name] = torch.maximum(maxima[name], seen) if name in maxima else seen

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        with torch.inference_mode():
            model(calibration_ids.reshape(1, -1).to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return maxima


def _smoothing(input_max: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    weight_max = weight.detach().abs().amax(0).float().clamp_min(1e-5)
    alpha = SMOOTHING_ALPHA
    return (input_max.clamp_min(1e-5) ** alpha / weight_max ** (1 - alpha)).clamp_min(1e-5)


def quantise_base(model: nn.Module, mode: str = "auto", tokenizer: Any = None) -> str:
    """Replace ``model``'s ``nn.Linear`` modules (the LM head included) by ``LowPrecisionLinear``, in place; in
    ``int8`` mode the decoder's linears become ``Int8Linear`` (smoothing calibrated on ``CALIBRATION_TEXT``, which
    needs the model's ``tokenizer``).

    Returns the concrete mode applied (``none`` leaves the model untouched). Call it before wrapping the model
    with a ``LoraPool``; a tied LM head gets its own bfloat16 copy (the input embedding stays float).
    """
    device = next(model.parameters()).device
    concrete = resolve_mode(mode, device, getattr(getattr(model, "config", None), "hidden_size", None))
    if concrete == "int8" and mode == "auto" and tokenizer is None:  # nothing to calibrate with
        concrete = "bf16" if _fast_bf16(device) else "none"
    if concrete == "none":
        return concrete
    targets = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    maxima: dict[str, torch.Tensor] = {}
    if concrete == "int8":
        if tokenizer is None:
            raise ValueError("int8 quantisation needs the model's tokenizer (to calibrate on CALIBRATION_TEXT)")
        calibration_ids = tokenizer(CALIBRATION_TEXT, return_tensors="pt").input_ids
        maxima = _input_maxima(model, [n for n, m in targets if m is not head], calibration_ids)
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if concrete == "int8" and module is not head:
            replacement: nn.Module = Int8Linear(module, _smoothing(maxima[name], module.weight))
        else:
            replacement = LowPrecisionLinear(module)
        setattr(parent, child, replacement)
    return concrete
