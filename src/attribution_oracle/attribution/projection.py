"""Seeded random projections that are generated block by block, never as one ``p x k`` matrix.

The projection of a gradient ``g`` (``p`` numbers spread over named parameter tensors) is
``sum_blocks g[block] @ R_block`` where each ``R_block`` (``rows x k``, Rademacher entries ``+-1/sqrt(k)``)
is drawn from a CPU generator seeded by ``sha256(seed, parameter name, block index)``. So the same seed
gives the same projection on any machine, blocks can be generated in any order, and memory holds one
block at a time. Blocks are cached while the cache stays under ``cache_bytes``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import Tensor

BLOCK_ROWS = 4096


def _block_seed(seed: int, name: str, block: int) -> int:
    digest = hashlib.sha256(f"{seed}:{name}:{block}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class Projector:
    """Project per-example gradients ``{name: [B, *shape]}`` to ``[B, dim]``; ``dim=None`` keeps them whole."""

    shapes: dict[str, tuple[int, ...]]
    dim: int | None = 512
    seed: int = 0
    cache_bytes: int = 1 << 30
    _cache: dict[tuple[str, int], Tensor] = field(default_factory=dict, repr=False)
    _cached: int = field(default=0, repr=False)

    @property
    def num_params(self) -> int:
        """``p``: the number of parameters projected."""
        return sum(int(torch.Size(s).numel()) for s in self.shapes.values())

    @property
    def out_dim(self) -> int:
        """The feature dimension after projection."""
        return self.num_params if self.dim is None else self.dim

    def _block(self, name: str, block: int, rows: int, device: torch.device) -> Tensor:
        key = (name, block)
        cached = self._cache.get(key)
        if cached is not None:
            return cached.to(device)
        gen = torch.Generator(device="cpu").manual_seed(_block_seed(self.seed, name, block))
        signs = torch.randint(0, 2, (rows, self.dim), generator=gen, dtype=torch.int8)
        matrix = (signs.to(torch.float32) * 2 - 1) / (self.dim**0.5)
        size = matrix.numel() * 4
        if self._cached + size <= self.cache_bytes:
            self._cache[key] = matrix
            self._cached += size
        return matrix.to(device)

    def project(self, grads: dict[str, Tensor], lead: int = 1) -> Tensor:
        """Project ``{name: [*lead_dims, *shape]}`` to ``[*lead_dims, dim]`` (float32, or float64 for float64 input)."""
        first = grads[next(iter(self.shapes))]
        lead_shape = first.shape[:lead]
        dtype = torch.promote_types(first.dtype, torch.float32)
        if self.dim is None:
            flat = [grads[n].reshape(*lead_shape, -1) for n in self.shapes]
            return torch.cat(flat, dim=-1).to(dtype)
        out = torch.zeros(*lead_shape, self.dim, dtype=dtype, device=first.device)
        for name in self.shapes:
            g = grads[name].reshape(-1, int(torch.Size(self.shapes[name]).numel())).to(dtype)
            for block, start in enumerate(range(0, g.shape[1], BLOCK_ROWS)):
                stop = min(g.shape[1], start + BLOCK_ROWS)
                part = g[:, start:stop] @ self._block(name, block, stop - start, g.device).to(dtype)
                out += part.reshape(*lead_shape, self.dim)
        return out
