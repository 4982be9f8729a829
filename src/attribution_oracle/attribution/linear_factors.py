"""Per-example gradient factors of ``nn.Linear`` layers from one batched forward and backward.

For ``y = W a + b`` the gradient of a per-example scalar ``f_b`` with respect to ``W`` is ``sum_t g_t a_t^T``
with ``g_t = df_b/dy_t``. When examples do not interact (``model.eval()``, no batch statistics), the backward of
``sum_b f_b`` gives every example's own ``g`` at once, so the factors ``(g, a)`` of all layers come from one
forward and one backward of the batch; for ``C`` outputs per example one batched backward (``vmap`` over the
``C`` one-hot output directions) gives ``d outputs_c / dy`` for every ``c``. ``KroneckerProjector`` projects
the factors without forming the per-example gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from attribution_oracle.attribution.kronecker_projection import KroneckerLayer

__all__ = ["linear_factors", "linear_output_factors"]


@contextmanager
def _recording(model: nn.Module, layers: Sequence[KroneckerLayer]) -> Iterator[list[list[tuple[Tensor, Tensor]]]]:
    """Keep every call's ``(input, output)`` of the layers' modules (outputs made part of the autograd graph)."""
    calls: list[list[tuple[Tensor, Tensor]]] = [[] for _ in layers]
    handles = []

    def hook_for(i: int) -> Callable:
        def forward_hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
            if not output.requires_grad:  # nothing before it needs a gradient: it is a leaf we may mark
                output.requires_grad_()
            calls[i].append((inputs[0].detach(), output))
            return output

        return forward_hook

    for i, layer in enumerate(layers):
        handles.append(model.get_submodule(layer.module).register_forward_hook(hook_for(i)))
    try:
        with torch.enable_grad():
            yield calls
    finally:
        for handle in handles:
            handle.remove()


def _single_call(calls: list[tuple[Tensor, Tensor]], layer: KroneckerLayer) -> tuple[Tensor, Tensor]:
    if len(calls) != 1:
        raise ValueError(f"{layer.module} ran {len(calls)} times in one forward; the factor capture needs exactly one")
    return calls[0]


def linear_factors(
    model: nn.Module, fn: Callable[[nn.Module, Any], Tensor], layers: Sequence[KroneckerLayer], batch: Any
) -> list[tuple[Tensor, Tensor]]:
    """Per layer ``(g, a)``: ``g = d fn_b / dy`` (``[B, out]`` or ``[B, T, out]``) and the layer input ``a``."""
    with _recording(model, layers) as calls:
        values = fn(model, batch)
        pairs = [_single_call(c, layer) for c, layer in zip(calls, layers, strict=True)]
        grads = torch.autograd.grad(values.sum(), [y for _, y in pairs], allow_unused=True)
    return [(torch.zeros_like(y) if g is None else g.detach(), a) for (a, y), g in zip(pairs, grads, strict=True)]


def linear_output_factors(
    model: nn.Module, fn: Callable[[nn.Module, Any], Tensor], layers: Sequence[KroneckerLayer], batch: Any
) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """The outputs ``fn`` (``[B, C]``, detached) and per layer ``(G, a)``: ``G = d outputs_c / dy``
    (``[B, C, out]`` or ``[B, C, T, out]``) for every output ``c``, and the layer input ``a``."""
    with _recording(model, layers) as calls:
        outputs = fn(model, batch)
        pairs = [_single_call(c, layer) for c, layer in zip(calls, layers, strict=True)]
        b, c = outputs.shape
        directions = torch.eye(c, dtype=outputs.dtype, device=outputs.device).unsqueeze(1).expand(c, b, c)
        grads = torch.autograd.grad(
            outputs, [y for _, y in pairs], grad_outputs=directions, is_grads_batched=True, allow_unused=True
        )
    factors = []
    for (a, y), g in zip(pairs, grads, strict=True):
        g = torch.zeros(c, *y.shape, dtype=y.dtype, device=y.device) if g is None else g.detach()
        factors.append((g.movedim(0, 1), a))  # [B, C, ..., out]
    return outputs.detach(), factors
