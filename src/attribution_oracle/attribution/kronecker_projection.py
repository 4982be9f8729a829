"""Kronecker-structured (LoGra-style) random projection of the gradients of ``nn.Linear`` layers.

For a linear layer ``y = W a + b`` the gradient of ``[W | b]`` for one example is ``sum_t g_t [a_t; 1]^T``
(``g_t = dL/dy_t``; one term for a plain vector input, one per position for a sequence). Projecting it with
``P = P_out (x) P_in`` (``k_out x out`` and ``k_in x (in + 1)`` Rademacher factors) gives
``vec(sum_t (P_out g_t)(P_in [a_t; 1])^T)``: the ``out x in`` gradient is never formed and there is no dense
``p x k`` multiply, only two small ones per layer. Each layer gets its own share of the ``dim`` output features;
a factor whose side is no larger than its input (``k_out >= out``) is the identity, not a random matrix.

The factors are drawn from CPU generators seeded by ``sha256(seed, layer, side)``, so the same seed gives the same
projection on any machine. ``project`` applies the same map to whole gradients (``{name: [B, *shape]}``), which
is what tests compare against the explicit Kronecker matrix (``dense_matrix``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["KroneckerLayer", "KroneckerProjector", "kronecker_layers"]


@dataclass(frozen=True)
class KroneckerLayer:
    """One ``nn.Linear`` whose weight and/or bias are attributed through."""

    module: str  # the module's name in the model
    weight: str | None  # the selected weight's parameter name (None: only the bias is attributed)
    bias: str | None  # the selected bias's parameter name (None: no bias or not attributed)
    out_features: int
    in_features: int

    @property
    def width(self) -> int:
        """Columns of the augmented gradient ``[W | b]`` that are attributed (``in`` for W, ``+1`` for b)."""
        return (self.in_features if self.weight else 0) + (1 if self.bias else 0)


def kronecker_layers(model: nn.Module, names: Sequence[str]) -> list[KroneckerLayer]:
    """Group the selected parameter ``names`` by the ``nn.Linear`` owning them (in the model's module order).

    Every selected parameter must be the weight or bias of an ``nn.Linear``; anything else is an error.
    """
    wanted = set(names)
    layers, claimed = [], set()
    for module_name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        prefix = f"{module_name}." if module_name else ""
        weight = f"{prefix}weight" if f"{prefix}weight" in wanted else None
        bias = f"{prefix}bias" if module.bias is not None and f"{prefix}bias" in wanted else None
        if weight or bias:
            layers.append(KroneckerLayer(module_name, weight, bias, module.out_features, module.in_features))
            claimed.update(n for n in (weight, bias) if n)
    others = [n for n in names if n not in claimed]
    if others:
        raise ValueError(f"the kronecker projection covers nn.Linear weights and biases only, not {others[:3]}")
    return layers


def _seed(seed: int, layer: str, side: str) -> int:
    digest = hashlib.sha256(f"kronecker:{seed}:{layer}:{side}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _rademacher(rows: int, cols: int, seed: int) -> Tensor:
    """``[rows, cols]`` signs ``+-1/sqrt(rows)`` in float64 (cast to the data's dtype where used)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    signs = torch.randint(0, 2, (rows, cols), generator=gen, dtype=torch.int8)
    return (signs.to(torch.float64) * 2 - 1) / math.sqrt(rows)


def split_dims(layers: Sequence[KroneckerLayer], dim: int) -> list[tuple[int, int]]:
    """``(k_out, k_in)`` per layer: an equal share of ``dim`` each (a layer with fewer parameters than its share
    keeps them all and leaves the rest to the others), factored in the proportion of the layer's sides."""
    budgets = [0] * len(layers)
    left, open_ = dim, list(range(len(layers)))
    while open_:
        share = left // len(open_)
        small = [i for i in open_ if layers[i].out_features * layers[i].width <= share]
        for i in small or open_:
            budgets[i] = min(share, layers[i].out_features * layers[i].width)
        left -= sum(budgets[i] for i in (small or open_))
        open_ = [i for i in open_ if i not in (small or open_)]
    dims = []
    for layer, budget in zip(layers, budgets, strict=True):
        budget = max(1, budget)
        k_out = min(layer.out_features, max(1, round(math.sqrt(budget * layer.out_features / layer.width))))
        k_in = min(layer.width, max(1, budget // k_out))
        if k_in == layer.width:  # the input side is whole: give the rest of the budget to the output side
            k_out = min(layer.out_features, max(1, budget // k_in))
        dims.append((k_out, k_in))
    return dims


class KroneckerProjector:
    """Project per-layer factors ``(g, a)`` of linear-layer gradients to ``[B, out_dim]`` (see the module doc)."""

    def __init__(self, layers: Sequence[KroneckerLayer], dim: int, seed: int = 0) -> None:
        """``dim``: the total number of output features (at most that; see ``out_dim``); ``seed``: the factors'."""
        if dim < len(layers):
            raise ValueError(f"proj_dim {dim} is smaller than the number of linear layers ({len(layers)})")
        self.layers = list(layers)
        self.seed = seed
        self.dims = split_dims(self.layers, dim)
        self.factors: list[tuple[Tensor | None, Tensor | None]] = []
        for layer, (k_out, k_in) in zip(self.layers, self.dims, strict=True):
            p_out = (
                None
                if k_out >= layer.out_features
                else _rademacher(k_out, layer.out_features, _seed(seed, layer.module, "out"))
            )
            p_in = None if k_in >= layer.width else _rademacher(k_in, layer.width, _seed(seed, layer.module, "in"))
            self.factors.append((p_out, p_in))
        self.offsets = [0]
        for k_out, k_in in self.dims:
            self.offsets.append(self.offsets[-1] + k_out * k_in)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The attributed parameters' shapes, in layer order."""
        out: dict[str, tuple[int, ...]] = {}
        for spec in self.layers:
            if spec.weight:
                out[spec.weight] = (spec.out_features, spec.in_features)
            if spec.bias:
                out[spec.bias] = (spec.out_features,)
        return out

    @property
    def dim(self) -> int | None:
        """``None`` when every factor is the identity (the gradients kept whole), else ``out_dim``."""
        return None if all(f is None for pair in self.factors for f in pair) else self.out_dim

    @property
    def out_dim(self) -> int:
        """The feature dimension after projection (the sum of ``k_out * k_in`` over layers)."""
        return self.offsets[-1]

    def describe(self) -> dict:
        """What an index manifest records about the projection."""
        return {
            "kind": "kronecker-rademacher",
            "dim": self.out_dim,
            "seed": self.seed,
            "factors": [list(d) for d in self.dims],
        }

    def augment(self, layer: int, inputs: Tensor) -> Tensor:
        """The attributed columns of a layer's input ``[..., in]``: ``a`` (weight), ``1`` (bias) or both."""
        spec = self.layers[layer]
        parts = [inputs] if spec.weight else []
        if spec.bias:
            parts.append(inputs.new_ones(*inputs.shape[:-1], 1))
        return torch.cat(parts, dim=-1)

    def project_out(self, layer: int, g: Tensor) -> Tensor:
        """``P_out g`` over the last dimension."""
        p_out = self.factors[layer][0]
        return g if p_out is None else g @ p_out.to(device=g.device, dtype=g.dtype).T

    def project_in(self, layer: int, a: Tensor) -> Tensor:
        """``P_in a`` over the last dimension (``a`` already augmented)."""
        p_in = self.factors[layer][1]
        return a if p_in is None else a @ p_in.to(device=a.device, dtype=a.dtype).T

    def project_factors(self, factors: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
        """Projected per-example gradients ``[B, out_dim]`` from each layer's ``(g, a)``.

        ``g`` is ``[B, out]`` or ``[B, T, out]`` (``dL/dy``), ``a`` the matching ``[B, in]`` / ``[B, T, in]``
        layer input (not augmented). A sequence's terms are summed per example.
        """
        parts = []
        for layer, (g, a) in enumerate(factors):
            u, v = self.project_out(layer, g), self.project_in(layer, self.augment(layer, a.to(g.dtype)))
            block = u.unsqueeze(-1) * v.unsqueeze(-2) if u.dim() == 2 else torch.einsum("bto,bti->boi", u, v)
            parts.append(block.reshape(block.shape[0], -1))
        return torch.cat(parts, dim=-1)

    def project(self, grads: dict[str, Tensor], lead: int = 1) -> Tensor:
        """Project whole gradients ``{name: [*lead_dims, *shape]}`` to ``[*lead_dims, out_dim]``:
        ``vec(P_out [dW | db] P_in^T)`` per layer (the same map as ``project_factors``)."""
        parts = []
        for i, spec in enumerate(self.layers):
            cols = []
            if spec.weight:
                cols.append(grads[spec.weight])
            if spec.bias:
                cols.append(grads[spec.bias].unsqueeze(-1))
            full = torch.cat(cols, dim=-1)  # [*lead, out, width]
            dtype = torch.promote_types(full.dtype, torch.float32)
            full = self.project_out(i, full.transpose(-1, -2).to(dtype)).transpose(-1, -2)
            full = self.project_in(i, full)
            parts.append(full.reshape(*full.shape[:lead], -1))
        return torch.cat(parts, dim=-1)

    def dense_matrix(self) -> Tensor:
        """The explicit ``[p, out_dim]`` matrix (``P_out (x) P_in`` per layer, block diagonal over layers), with the
        parameters flattened in layer order, each layer's weight then bias. For tests; never needed otherwise."""
        blocks = []
        for i, spec in enumerate(self.layers):
            p_out, p_in = self.factors[i]
            p_out = torch.eye(spec.out_features, dtype=torch.float64) if p_out is None else p_out
            p_in = torch.eye(spec.width, dtype=torch.float64) if p_in is None else p_in
            kron = torch.kron(p_out, p_in)  # [(k_out k_in), (out width)], row-major over (out, width)
            if spec.weight and spec.bias:  # reorder columns from (out, in+1) to weight (out, in) then bias (out)
                index = torch.arange(spec.out_features * spec.width).reshape(spec.out_features, spec.width)
                kron = kron[:, torch.cat([index[:, :-1].reshape(-1), index[:, -1]])]
            blocks.append(kron.T)
        return torch.block_diag(*blocks)

    def ggn(self, jacobian_factors: Sequence[tuple[Tensor, Tensor]], hessian: Tensor) -> Tensor:
        """``sum_b (P J_b^T) H_b (P J_b^T)^T`` (``[out_dim, out_dim]``, float64) from each layer's Jacobian
        factors ``(G, a)``: ``G`` ``[B, C, out]`` = ``d outputs_c / dy``, ``a`` ``[B, in]``; ``hessian`` ``[B, C, C]``.

        Each example's projected Jacobian row for output ``c`` in layer ``l`` is ``u_bc (x) v_b`` with
        ``u_bc = P_out G_bc`` and ``v_b = P_in a_b``, so block ``(l, m)`` of the sum is
        ``sum_b A_b (x) B_b`` with ``A_b = U_b^T H_b U'_b`` and ``B_b = v_b v'_b^T``: one GEMM of
        ``[B, k_out k_out']^T [B, k_in k_in']`` (``B * k^2`` multiply-adds in all, not ``B * C * k^2``).
        Only for vector inputs (one position per example).
        """
        h = hessian.to(torch.float64)
        us, vs = [], []
        for layer, (g, a) in enumerate(jacobian_factors):
            if a.dim() != 2:
                raise ValueError("the kronecker GGN needs one input vector per example")
            us.append(self.project_out(layer, g.to(torch.float64)))  # [B, C, k_out]
            vs.append(self.project_in(layer, self.augment(layer, a.to(torch.float64))))  # [B, k_in]
        n = h.shape[0]
        hu = [torch.einsum("bcd,bdk->bck", h, u) for u in us]
        total = torch.zeros(self.out_dim, self.out_dim, dtype=torch.float64)
        for i in range(len(us)):
            for j in range(i, len(us)):
                (ko_i, ki_i), (ko_j, ki_j) = self.dims[i], self.dims[j]
                a_b = torch.einsum("bck,bcm->bkm", us[i], hu[j]).reshape(n, -1)  # [B, ko_i * ko_j]
                b_b = (vs[i].unsqueeze(-1) * vs[j].unsqueeze(-2)).reshape(n, -1)  # [B, ki_i * ki_j]
                block = (a_b.T @ b_b).reshape(ko_i, ko_j, ki_i, ki_j).permute(0, 2, 1, 3)
                block = block.reshape(ko_i * ki_i, ko_j * ki_j).cpu()
                rows = slice(self.offsets[i], self.offsets[i + 1])
                cols = slice(self.offsets[j], self.offsets[j + 1])
                total[rows, cols] += block
                if i != j:
                    total[cols, rows] += block.T
        return total
