"""The exact integer scoring kernel: exact, order-independent, within its documented error, same in any process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_oracle.attribution import AttributionIndex
from attribution_oracle.attribution.fixed_point import (
    LIMIT,
    MAX_BLOCK_DIMS,
    error_bound,
    grouped_sums,
    integer_scores,
    pick_kernel,
    quantise,
    scores_float,
)

WORKER = Path(__file__).with_name("fixed_point_worker.py")
AVAILABLE_KERNELS = sorted({"float64", pick_kernel("cpu")} | ({"int_mm"} if hasattr(torch, "_int_mm") else set()))


def test_the_cpu_default_is_the_onednn_int8_kernel_where_torch_has_onednn() -> None:
    # the speed of one query rests on it (benchmarks/query.py); elsewhere the probe falls back to int_mm/float64
    if torch.backends.mkldnn.is_available():
        assert pick_kernel("cpu") == "onednn"
    assert pick_kernel("meta") in ("int_mm", "float64")


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 30), d=st.sampled_from([511, 512, 513, 1024, 1300]), b=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1), extreme=st.booleans(),
)  # fmt: skip
def test_onednn_kernel_blocks_equal_the_int64_reference_at_block_edges(n, d, b, seed, extreme) -> None:
    gen = torch.Generator().manual_seed(seed)
    x, q = torch.randn(n, d, generator=gen), torch.randn(b, d, generator=gen)
    if extreme:  # every limb product at its largest: the float32 output is exact only up to 2**24 per block
        x, q = torch.where(x > 0, 0.99999, -0.99999), torch.where(q > 0, 0.99999, -0.99999)
    rows, queries = quantise(x), quantise(q)
    reference = queries.integers() @ rows.integers().T
    for kernel in AVAILABLE_KERNELS:
        assert torch.equal(integer_scores(queries, rows, kernel=kernel), reference), kernel


def test_rows_keep_fourteen_bits_with_a_power_of_two_scale_per_row() -> None:
    x = torch.tensor([[0.5, -0.25, 0.0], [100.0, 3.0, -64.0], [0.0, 0.0, 0.0], [0.99999, -0.5, 1e-4]])
    fixed = quantise(x)
    assert (
        fixed.limbs.dtype == torch.int8 and fixed.limbs.shape == (4, 6) and fixed.exponents.tolist() == [14, 7, 0, 14]
    )
    ints = fixed.integers()
    assert ints[0].tolist() == [8192, -4096, 0] and ints[1].tolist() == [12800, 384, -8192]
    assert ints[2].tolist() == [0, 0, 0]
    assert ints[3].tolist() == [16383, -8192, 2]  # 0.99999 * 2**14 = 16383.8 clamps to 16383
    assert fixed.lo.min() >= 0 and ints.abs().max() <= LIMIT
    assert torch.equal(fixed.to_float()[1], x[1].double())


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40), d=st.integers(1, 70), b=st.integers(1, 5), seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-6, 1.0, 1e6]),
)  # fmt: skip
def test_both_integer_paths_equal_the_int64_reference_exactly(n, d, b, seed, scale) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen) * scale
    q = torch.randn(b, d, generator=gen, dtype=torch.float64)
    rows, queries = quantise(x), quantise(q)
    reference = queries.integers() @ rows.integers().T
    assert torch.equal(integer_scores(queries, rows, use_int_mm=False), reference)
    assert torch.equal(integer_scores(queries, rows), reference)  # the default kernel (oneDNN where trusted)
    for kernel in AVAILABLE_KERNELS:
        assert torch.equal(integer_scores(queries, rows, kernel=kernel), reference), kernel
    exact = scores_float(queries, rows)
    assert torch.equal(exact, queries.to_float() @ rows.to_float().T)  # both sides exact: same IEEE doubles
    assert ((exact - q @ x.double().T).abs() <= error_bound(q, x)).all()


def test_extreme_values_cannot_overflow_a_block() -> None:
    d = 4096
    rows = quantise(torch.full((3, d), -0.99999))  # -16383 = limbs (-128, 1)
    queries = quantise(torch.full((2, d), 0.99999))  # 16383 = limbs (127, 127)
    got = integer_scores(queries, rows)
    assert torch.equal(got, torch.full((2, 3), -(16383**2) * d, dtype=torch.int64))
    for kernel in AVAILABLE_KERNELS:
        assert torch.equal(got, integer_scores(queries, rows, kernel=kernel)), kernel
    assert MAX_BLOCK_DIMS * 128 * 128 < 2**31 <= (MAX_BLOCK_DIMS + 1) * 128 * 128


def test_scores_do_not_depend_on_the_order_of_dimensions_or_the_batch() -> None:
    gen = torch.Generator().manual_seed(3)
    x, q = torch.randn(500, 96, generator=gen), torch.randn(6, 96, generator=gen)
    perm = torch.randperm(96, generator=gen)
    rows, rows_p = quantise(x), quantise(x[:, perm])
    together = scores_float(quantise(q), rows)
    assert torch.equal(together, scores_float(quantise(q[:, perm]), rows_p))
    alone = torch.cat([scores_float(quantise(q[i : i + 1]), rows) for i in range(6)])
    assert torch.equal(together, alone)


def test_grouped_sums_are_correctly_rounded_whatever_the_member_order() -> None:
    scores = torch.tensor([[1e16, 1.0, -1e16, 1.0, 3.0]], dtype=torch.float64)
    assert grouped_sums(scores, [[0, 1, 2, 3], [3, 2, 1, 0], [4]]) == [[2.0, 2.0, 3.0]]


def test_index_top_k_breaks_exact_ties_by_row_order(tmp_path) -> None:
    feats = torch.tensor([[1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.5, 0.0]])
    index = AttributionIndex.create(tmp_path / "i", feats, ["a", "b", "c", "d", "e"], manifest={})
    top = index.top_k(torch.tensor([1.0, 0.0]), k=3)[0]
    assert top.ids == ["b", "d", "a"] and top.scores == [2.0, 2.0, 1.0]


def test_two_processes_with_different_thread_counts_produce_byte_identical_shares(tmp_path) -> None:
    gen = torch.Generator().manual_seed(11)
    n, d = 3000, 256
    feats = torch.randn(n, d, generator=gen) * torch.logspace(-3, 3, n).unsqueeze(1)
    AttributionIndex.create(tmp_path / "idx", feats.float(), [f"c{i}" for i in range(n)], manifest={})
    torch.save(torch.randn(4, d, generator=gen, dtype=torch.float64), tmp_path / "q.pt")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    outputs = []
    for threads in (1, 2):
        env["OMP_NUM_THREADS"] = str(threads)
        run = subprocess.run(
            [sys.executable, str(WORKER), str(tmp_path / "idx"), str(tmp_path / "q.pt"), str(threads)],
            capture_output=True, text=True, env=env, timeout=300, check=True,
        )  # fmt: skip
        outputs.append(json.loads(run.stdout))
    one, two = outputs
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one["shares"] == two["shares"] and one["scores"] == two["scores"] and one["top"] == two["top"]
    assert all(json.loads(s) for s in one["shares"])  # every query paid someone


def test_float32_rows_quantise_like_their_float64_values_even_near_the_float32_limits() -> None:
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(50, 33, generator=gen) * torch.logspace(-40, 38, 50).unsqueeze(1)
    x = x.float()  # includes subnormal rows, whose 2**e does not fit a float32
    a, b = quantise(x), quantise(x.double())
    assert torch.equal(a.limbs, b.limbs) and torch.equal(a.exponents, b.exponents)
    assert torch.isfinite(a.to_float()).all()
