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

Modes: ``bf16``; ``none`` (float32, the PEFT-parity path); ``auto`` = ``bf16`` where it wins: the device has
fast bfloat16 matmuls (CUDA with BF16 support, or a CPU where oneDNN reports BF16 support) and the model is big
enough for the matmuls to dominate the casts (hidden size >= ``AUTO_MIN_HIDDEN``), else ``none``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODES", "LowPrecisionLinear", "quantise_base", "resolve_mode"]

MODES = ("auto", "bf16", "none")
AUTO_MIN_HIDDEN = 256


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


def resolve_mode(mode: str, device: torch.device | str, hidden_size: int | None = None) -> str:
    """The concrete mode (``bf16`` or ``none``) for ``mode`` on ``device`` (``auto`` also needs the hidden size)."""
    if mode not in MODES:
        raise ValueError(f"quantisation mode must be one of {MODES}, not {mode!r}")
    if mode == "auto":
        big = hidden_size is None or hidden_size >= AUTO_MIN_HIDDEN
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


def quantise_base(model: nn.Module, mode: str = "auto") -> str:
    """Replace ``model``'s ``nn.Linear`` modules (the LM head included) by ``LowPrecisionLinear``, in place.

    Returns the concrete mode applied (``none`` leaves the model untouched). Call it before wrapping the model
    with a ``LoraPool``; a tied LM head gets its own bfloat16 copy (the input embedding stays float).
    """
    device = next(model.parameters()).device
    concrete = resolve_mode(mode, device, getattr(getattr(model, "config", None), "hidden_size", None))
    if concrete == "none":
        return concrete
    targets = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LowPrecisionLinear(module))
    return concrete
