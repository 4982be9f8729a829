"""Exact, order-independent scoring: features quantised to fixed point, dot products accumulated in integers.

Why: float dot products depend on summation order (BLAS blocking, thread count, SIMD width), so two machines
can disagree in the last bits, and an oracle's m-of-n signatures need byte-identical shares. Integer sums are
associative, so the score below is the same on every machine, thread count, batch size and device.

The quantisation (documented because every node must apply exactly this rule), the same for index rows and queries:

- Row ``x`` (an index row or a query) gets its own power-of-two scale ``2**e`` with ``e = 14 - k``, where
  ``max|x| = f * 2**k``, ``0.5 <= f < 1`` (``frexp``); its entries become
  ``v = clamp(round_half_even(x * 2**e), -16383, 16383)``, so the largest lands in ``[8192, 16383]``: 14
  significant bits per row (float16 has 11). All-zero rows get ``e = 0`` and zeros. A row's representation
  depends only on that row (appending rows never changes earlier ones).
- ``v`` is stored as two int8 limbs, ``hi = v >> 7`` (floor, in ``[-128, 127]``) and ``lo = v & 127`` (in
  ``[0, 127]``), ``v = 128 * hi + lo``, side by side in one ``[n, 2d]`` int8 matrix ``[hi | lo]``: an index costs
  2 bytes per entry, half of float32, and one pass of ``torch._int_mm`` over it serves every query limb.
- The score of query ``q`` and row ``x`` is ``s * 2**-(e_q + e_x)`` with the integer
  ``s = 16384 (q_hi . x_hi) + 128 (q_lo . x_hi + q_hi . x_lo) + (q_lo . x_lo)``, i.e. the products of the
  packed rows with ``[q_hi | 0]``, ``[q_lo | q_hi]`` and ``[0 | q_lo]`` weighted 16384, 128 and 1; float64 holds it
  exactly (``|s| <= 16383**2 d < 2**53`` for ``d < 2**25``), so ``scores_float`` is exact too.

Three kernels compute the same integers (every one is exact, so they agree bit for bit, whatever the blocking,
thread count or summation order; ``kernel=`` picks one, the default is the first that is available and trusted):

- ``"onednn"`` (CPU, the default where it passes its probe): the rows' limbs are prepacked once per index
  (``torch.ops.onednn.qlinear_prepack``, kept with the rows, a second copy of the limbs) in blocks of
  ``ONEDNN_BLOCK_DIMS = 512`` dimensions, and each block is one ``onednn.qlinear_pointwise`` call: the query limbs
  as uint8 (zero point 128, scale 1), the row limbs as int8 (scale 1), int32 accumulation, float32 output. The
  output is exact because one block's limb product is at most ``2 * 512 * 128 * 128 = 2**24`` in magnitude (the
  middle product ``q_lo . x_hi + q_hi . x_lo`` is at most ``2 * 512 * 127 * 128 < 2**24``), and every integer of
  that size is a float32; the blocks are added in int64. It is a small-batch int8 GEMM with VNNI on this CPU and
  reads 2 bytes per entry where float32 reads 4: one query costs less than numpy's float32 ``sgemv``. It is
  checked once against an int64 product on a probe with extreme values (uint8 255 times int8 -128/127, which
  would show any int16 saturation of older x86 int8 paths); if it is missing or wrong, the next kernel is used.
- ``"int_mm"``: ``torch._int_mm`` (int32 accumulation, any device). One limb product is at most
  ``128 * 128 = 16384`` in magnitude, so a block of ``K`` dimensions sums to at most ``16384 * K``, below ``2**31``
  for ``K <= MAX_BLOCK_DIMS = 131_071``; longer rows are split into such blocks and the blocks are added in int64.
  It is checked once against an int64 product (it is wrong for ``K = 1`` in torch 2.x; packed rows have
  ``K = 2d >= 2``).
- ``"float64"``: the same limbs multiplied in float64 (any device), exact for the same reason (every partial sum is
  an integer below ``2**53``).

Quantisation error: an entry is off by at most one unit ``2**-e`` of its row (half a unit unless clamped), so
``|score - x.q| <= |q|_1 2**-e_x + |x|_1 2**-e_q + d 2**-(e_x + e_q)`` (``error_bound``); relatively about
``2**-14`` of ``|x|_1 |q|_inf``.

Sums of scores (a contribution's chunks) are exact too: ``grouped_sums`` adds the exact row scores of each group
with ``math.fsum`` (correctly rounded, so independent of order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import torch
from torch import Tensor

BITS = 14
LIMB_BITS = 7
LIMIT = (1 << BITS) - 1  # 16383
MAX_BLOCK_DIMS = (2**31 - 1) // (128 * 128)  # 131_071: int32 cannot overflow within a block
ONEDNN_BLOCK_DIMS = 512  # 2 * 512 * 128 * 128 = 2**24: a block's limb product is an exact float32
Kernel = Literal["onednn", "int_mm", "float64"]
_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class FixedPoint:
    """Rows ``(128 * hi + lo) * 2**-exponents``: int8 ``limbs = [hi | lo]`` ``[n, 2d]``, int64 exponents ``[n]``."""

    limbs: Tensor
    exponents: Tensor
    _packed: dict[str, list[Tensor]] = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return int(self.limbs.shape[0])

    @property
    def dim(self) -> int:
        """Entries per row."""
        return int(self.limbs.shape[1]) // 2

    @property
    def hi(self) -> Tensor:
        """The high limbs ``[n, d]``."""
        return self.limbs[:, : self.dim]

    @property
    def lo(self) -> Tensor:
        """The low limbs ``[n, d]`` (in ``[0, 127]``)."""
        return self.limbs[:, self.dim :]

    def integers(self) -> Tensor:
        """The quantised entries ``[n, d]`` as int64."""
        return self.hi.to(torch.int64) * (1 << LIMB_BITS) + self.lo.to(torch.int64)

    def to_float(self) -> Tensor:
        """The represented rows as float64 (exact)."""
        return torch.ldexp(self.integers().to(torch.float64), -self.exponents.to(torch.float64).unsqueeze(1))

    def to(self, device: torch.device | str) -> FixedPoint:
        """The same rows on ``device`` (kernel packings are not carried over)."""
        return FixedPoint(self.limbs.to(device), self.exponents)


def _exponents(x: Tensor) -> Tensor:
    """Per-row ``e`` with ``max|row| * 2**e`` in ``[2**(BITS-1), 2**BITS)`` (0 for all-zero rows)."""
    top = x.abs().amax(dim=1).to(torch.float64)
    _, k = torch.frexp(top)
    return torch.where(top > 0, BITS - k.to(torch.int64), torch.zeros_like(k, dtype=torch.int64))


def _check(x: Tensor) -> Tensor:
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2:
        raise ValueError(f"expected a [rows, dim] tensor, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("features must be finite to be quantised")
    return x


def quantise(x: Tensor) -> FixedPoint:
    """Quantise rows ``[n, d]`` (index rows or queries) to 14 bits with one power-of-two scale per row."""
    x = _check(x)
    limbs, exponents = [], []
    for start in range(0, x.shape[0], _CHUNK_ROWS):  # bounded temporaries for big (memory-mapped) indices
        part = x[start : start + _CHUNK_ROWS]
        e = _exponents(part)
        # scaling by a power of two is exact in the input's own float type (float32 rows stay float32, half the
        # memory traffic) unless 2**e itself would overflow it; rounding is then exact too (|v| < 2**24)
        exact32 = part.dtype == torch.float32 and (len(e) == 0 or int(e.max()) <= 100)
        work = torch.float32 if exact32 else torch.float64
        v = torch.ldexp(part.to(work), e.to(work).unsqueeze(1))
        v = torch.round(v).clamp_(-LIMIT, LIMIT).to(torch.int16)
        hi = torch.bitwise_right_shift(v, LIMB_BITS)  # arithmetic shift: floor(v / 128)
        limbs.append(torch.cat([hi, torch.bitwise_and(v, (1 << LIMB_BITS) - 1)], dim=1).to(torch.int8))
        exponents.append(e)
    if not limbs:
        return FixedPoint(torch.zeros(0, 2 * x.shape[1], dtype=torch.int8), torch.zeros(0, dtype=torch.int64))
    return FixedPoint(torch.cat(limbs), torch.cat(exponents))


@cache
def _int_mm_trusted(device_type: str) -> bool:
    """``torch._int_mm`` exists here and agrees with an int64 product on a probe (extreme values included)."""
    if not hasattr(torch, "_int_mm"):
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randint(-128, 128, (4, 96), generator=gen, dtype=torch.int8)
        b = torch.randint(-128, 128, (33, 96), generator=gen, dtype=torch.int8)
        a[0], b[0], b[1] = -128, -128, 127
        got = torch._int_mm(a.to(device_type), b.to(device_type).T).to(torch.int64).cpu()
        return bool(torch.equal(got, a.to(torch.int64) @ b.to(torch.int64).T))
    except (RuntimeError, NotImplementedError):
        return False


def _onednn_pack(limbs: Tensor) -> Tensor:
    """One block of row limbs ``[n, 2k]`` (int8) prepacked for ``_onednn_products``."""
    return torch.ops.onednn.qlinear_prepack(limbs.contiguous(), None)


def _onednn_products(left: Tensor, packed: Tensor, n: int) -> Tensor:
    """Exact ``left @ rows.T`` ``[b, n]`` as float32 for int8 ``left`` and prepacked int8 rows (module docstring)."""
    qx = (left.to(torch.int16) + 128).to(torch.uint8)  # uint8 with zero point 128 represents int8 exactly
    ones, zeros = torch.ones(n), torch.zeros(n, dtype=torch.int64)
    return torch.ops.onednn.qlinear_pointwise(
        qx, 1.0, 128, packed, ones, zeros, None, 1.0, 0, torch.float32, "none", [], ""
    )  # fmt: skip


@cache
def _onednn_trusted() -> bool:
    """The oneDNN int8 kernel exists here and equals an int64 product on a probe at the block's extremes."""
    if not (hasattr(torch.ops, "onednn") and torch.backends.mkldnn.is_available()):
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        k = 2 * ONEDNN_BLOCK_DIMS
        a = torch.randint(-128, 128, (5, k), generator=gen, dtype=torch.int8)
        b = torch.randint(-128, 128, (37, k), generator=gen, dtype=torch.int8)
        a[0], a[1], b[0], b[1] = 127, -128, -128, 127  # 255 and 0 as uint8: any int16 saturation would show
        a[2, : k // 2], a[2, k // 2 :], b[2, : k // 2], b[2, k // 2 :] = 127, -128, -128, 127  # 2**24 - 2**17
        got = _onednn_products(a, _onednn_pack(b), b.shape[0])
        want = a.to(torch.int64) @ b.to(torch.int64).T
        return bool(got.dtype == torch.float32 and torch.equal(got.to(torch.int64), want))
    except (RuntimeError, NotImplementedError, AttributeError):
        return False


def _left(queries: FixedPoint, start: int, stop: int) -> Tensor:
    """The query limbs ``[3b, 2(stop - start)]`` for dimensions ``start..stop``: ``[hi|0]``, ``[lo|hi]``, ``[0|lo]``."""
    hi, lo = queries.hi[:, start:stop], queries.lo[:, start:stop]
    zero = torch.zeros_like(hi)
    return torch.cat([torch.cat([hi, zero], 1), torch.cat([lo, hi], 1), torch.cat([zero, lo], 1)])


def _row_blocks(rows: FixedPoint, block: int) -> list[tuple[int, int, Tensor]]:
    """The rows' limbs in blocks of ``block`` dimensions: ``(start, stop, [n, 2(stop - start)] limbs)``."""
    d = rows.dim
    if d <= block:
        return [(0, d, rows.limbs)]
    return [
        (s, min(d, s + block), torch.cat([rows.hi[:, s : s + block], rows.lo[:, s : s + block]], 1))
        for s in range(0, d, block)
    ]


def _onednn_packed(rows: FixedPoint) -> list[Tensor]:
    """The rows' prepacked blocks (computed on first use, then kept with the rows)."""
    if "onednn" not in rows._packed:
        rows._packed["onednn"] = [_onednn_pack(limbs) for _, _, limbs in _row_blocks(rows, ONEDNN_BLOCK_DIMS)]
    return rows._packed["onednn"]


def _products(left: Tensor, right: Tensor, use_int_mm: bool) -> Tensor:
    """Exact ``left @ right.T`` of int8 matrices as int64."""
    d = right.shape[1]
    if use_int_mm:
        out = None
        for start in range(0, d, MAX_BLOCK_DIMS):  # int32 cannot overflow inside a block (module docstring)
            stop = min(d, start + MAX_BLOCK_DIMS)
            part = torch._int_mm(left[:, start:stop].contiguous(), right[:, start:stop].T).to(torch.int64)
            out = part if out is None else out + part
        return out
    # float64 holds every partial sum exactly (|partial| <= 128 * 128 * d < 2**53), whatever the order
    return (left.to(torch.float64) @ right.to(torch.float64).T).to(torch.int64)


def pick_kernel(device_type: str = "cpu") -> Kernel:
    """The default kernel on ``device_type``: oneDNN int8 on a CPU that passes its probe, else int_mm, else float64."""
    if device_type == "cpu" and _onednn_trusted():
        return "onednn"
    return "int_mm" if _int_mm_trusted(device_type) else "float64"


def integer_scores(
    queries: FixedPoint, rows: FixedPoint, *, use_int_mm: bool | None = None, kernel: Kernel | None = None
) -> Tensor:
    """Exact integer dot products ``[b, n]`` (int64) of quantised queries with quantised rows.

    ``kernel`` picks the arithmetic (module docstring; all give the same integers); ``use_int_mm`` is the older
    switch (True: ``"int_mm"``, False: ``"float64"``). The default is ``pick_kernel`` for the rows' device.
    """
    if queries.dim != rows.dim:
        raise ValueError(f"query dimension {queries.dim} does not match the rows' {rows.dim}")
    b = len(queries)
    if b == 0 or len(rows) == 0:
        return torch.zeros(b, len(rows), dtype=torch.int64)
    device = rows.limbs.device
    if kernel is None:
        kernel = pick_kernel(device.type) if use_int_mm is None else ("int_mm" if use_int_mm else "float64")
    if kernel == "onednn":
        if device.type != "cpu":
            raise ValueError("the onednn kernel runs on the CPU only")
        p = None
        for (start, stop, _), packed in zip(_row_blocks(rows, ONEDNN_BLOCK_DIMS), _onednn_packed(rows), strict=True):
            part = _onednn_products(_left(queries, start, stop), packed, len(rows)).to(torch.int64)
            p = part if p is None else p + part
    elif kernel in ("int_mm", "float64"):
        left = _left(queries, 0, queries.dim).to(device)
        p = _products(left, rows.limbs, kernel == "int_mm")  # one pass over the index for every query and limb
    else:
        raise ValueError(f"unknown kernel {kernel!r}")
    return ((p[:b] << (2 * LIMB_BITS)) + (p[b : 2 * b] << LIMB_BITS) + p[2 * b :]).cpu()


def scores_float(
    queries: FixedPoint, rows: FixedPoint, *, use_int_mm: bool | None = None, kernel: Kernel | None = None
) -> Tensor:
    """Exact scores ``[b, n]`` as float64: ``integer_scores * 2**-(e_row + e_query)``."""
    s = integer_scores(queries, rows, use_int_mm=use_int_mm, kernel=kernel)
    shift = rows.exponents.cpu().unsqueeze(0) + queries.exponents.cpu().unsqueeze(1)
    return torch.ldexp(s.to(torch.float64), -shift.to(torch.float64))


def error_bound(query: Tensor, rows: Tensor) -> Tensor:
    """Upper bound ``[b, n]`` of ``|scores_float - query @ rows.T|`` due to quantisation (module docstring)."""
    query, rows = _check(query).to(torch.float64), _check(rows).to(torch.float64)
    unit_r = torch.ldexp(torch.ones(rows.shape[0], dtype=torch.float64), -_exponents(rows).double())
    unit_q = torch.ldexp(torch.ones(query.shape[0], dtype=torch.float64), -_exponents(query).double())
    return (
        query.abs().sum(1, keepdim=True) * unit_r.unsqueeze(0)
        + rows.abs().sum(1).unsqueeze(0) * unit_q.unsqueeze(1)
        + rows.shape[1] * unit_q.unsqueeze(1) * unit_r.unsqueeze(0)
    )


def grouped_sums(scores: Tensor, groups: Sequence[Sequence[int]]) -> list[list[float]]:
    """For each query row of exact float64 ``scores [b, n]``, the correctly rounded sum of each group of columns."""
    return [[math.fsum(row[i] for i in members) for members in groups] for row in scores.tolist()]
