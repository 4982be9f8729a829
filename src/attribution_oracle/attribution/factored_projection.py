"""The dense seeded projection (``projection.Projector``) of ``nn.Linear`` gradients, computed from their factors.

For one example with a vector input ``a``, the gradient of ``W`` (``out x in``) along any output direction is
``g a^T``, so its projection with the dense matrix ``R`` (``[out, in, k]`` for ``W``) is
``sum_o g_o (sum_i a_i R[o, i])``. ``T = a . R`` (``[out, k]``) is one GEMM per batch (``in x out k`` per
example: the cost of projecting one whole gradient), and it is shared by every ``g`` of the example: the loss
gradient and the ``C`` Jacobian rows of the Gauss-Newton curvature each cost only ``out x k`` more. The dense
path forms ``C + 1`` gradients and projects each (``(C + 1) x out x in x k``). The matrix is exactly the
``Projector``'s (same seeded blocks), so the features equal the dense path's up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from attribution_oracle.attribution.kronecker_projection import KroneckerLayer
from attribution_oracle.attribution.projection import BLOCK_ROWS, Projector

__all__ = ["FactoredDenseProjector"]


class FactoredDenseProjector:
    """``Projector``'s projection of linear-layer gradients from ``(g, a)`` factors (vector inputs only)."""

    def __init__(self, projector: Projector, layers: Sequence[KroneckerLayer]) -> None:
        """``projector``: the dense projection (``dim`` set); ``layers``: the linear layers of its parameters."""
        if projector.dim is None:
            raise ValueError("the factored projection needs a projection dimension (proj_dim)")
        self.projector, self.layers, self.dim = projector, list(layers), projector.dim
        self.weights: list[Tensor | None] = []  # [in, out * k] per layer: R[o, i, :] at [i, o * k : (o + 1) * k]
        self.biases: list[Tensor | None] = []  # [out, k]
        for layer in self.layers:
            self.weights.append(None if layer.weight is None else self._matrix(layer.weight, layer.out_features, False))
            self.biases.append(None if layer.bias is None else self._matrix(layer.bias, layer.out_features, True))

    def _matrix(self, name: str, out: int, bias: bool) -> Tensor:
        numel = int(torch.Size(self.projector.shapes[name]).numel())
        blocks = [
            self.projector._block(name, block, min(numel, start + BLOCK_ROWS) - start, torch.device("cpu"))
            for block, start in enumerate(range(0, numel, BLOCK_ROWS))
        ]
        full = torch.cat(blocks)  # [numel, k], rows in the parameter's row-major order
        if bias:
            return full
        return full.reshape(out, numel // out, self.dim).permute(1, 0, 2).reshape(numel // out, out * self.dim)

    def inputs_projected(self, layer: int, a: Tensor) -> Tensor:
        """``T = a . R + R_bias`` (``[B, out, k]``): one layer's vector inputs ``a`` (``[B, in]``) through the
        projection of its weight, plus its bias's rows (so ``g . T`` projects the whole layer gradient)."""
        if a.dim() != 2:
            raise ValueError("the factored projection needs one input vector per example (no sequence positions)")
        weight, bias = self.weights[layer], self.biases[layer]
        spec = self.layers[layer]
        if weight is None:
            t = a.new_zeros(a.shape[0], spec.out_features, self.dim)
        else:
            t = (a @ weight.to(device=a.device, dtype=a.dtype)).reshape(a.shape[0], -1, self.dim)
        if bias is not None:
            t += bias.to(device=a.device, dtype=a.dtype)
        return t

    def project(self, factors: Sequence[tuple[Tensor, Tensor]], shared: Sequence[Tensor] | None = None) -> Tensor:
        """Projected gradients ``[B, *lead, k]`` from each layer's ``(g, a)``: ``g`` ``[B, *lead, out]`` (one
        gradient or several rows per example), ``a`` ``[B, in]``. ``shared``: ``inputs_projected`` per layer,
        when already computed for the same inputs."""
        total = None
        for layer, (g, a) in enumerate(factors):
            t = shared[layer] if shared is not None else self.inputs_projected(layer, a.to(g.dtype))
            flat = g.reshape(g.shape[0], -1, g.shape[-1])  # [B, L, out]
            part = torch.bmm(flat, t.to(g.dtype)) if total is None else torch.baddbmm(total, flat, t.to(g.dtype))
            total = part
        assert total is not None
        return total.reshape(*factors[0][0].shape[:-1], self.dim)
