"""Eager attention for the factory's own forward passes.

Two reasons, both measured on CPU: with an explicit 4D mask (our packed rows) PyTorch's fused SDPA kernel is several
times slower than the eager matmul path (benchmarks/train.py), and ``torch.func.vmap`` (per-example gradients) has
no batching rule for it and loops over examples. Hugging Face models switch with ``set_attn_implementation``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eager_attention"]


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with eager attention, then restore the model's previous implementation."""
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    switch = previous not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        if switch:
            model.set_attn_implementation(previous)
