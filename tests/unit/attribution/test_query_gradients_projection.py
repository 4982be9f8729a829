"""The fast query path's projection: the projector's own signs, multiplied exactly in integers."""

from __future__ import annotations

import math

import torch

from attribution_oracle.attribution.fixed_point import quantise
from attribution_oracle.attribution.projection import BLOCK_ROWS, Projector
from attribution_oracle.attribution.query_gradients import _exact_projection, _unit, projector_signs, single_thread


def test_the_signs_are_the_projectors_blocks_times_sqrt_dim() -> None:
    projector = Projector({"a": (3, BLOCK_ROWS // 2 + 5), "b": (7,)}, dim=16, seed=11)
    for name, shape in projector.shapes.items():
        numel = math.prod(shape)
        signs = projector_signs(projector, name)
        assert signs.dtype == torch.int8 and signs.shape == (16, numel)
        blocks = [projector._block(name, b, min(numel, s + BLOCK_ROWS) - s, torch.device("cpu"))
                  for b, s in enumerate(range(0, numel, BLOCK_ROWS))]  # fmt: skip
        assert torch.equal(torch.sign(torch.cat(blocks)).T.to(torch.int8), signs)


def test_the_exact_projection_is_the_quantised_gradient_times_the_signs_without_rounding() -> None:
    gen = torch.Generator().manual_seed(3)
    projector = Projector({"w": (40, 300)}, dim=32, seed=5)
    signs = projector_signs(projector, "w")
    for scale in (1e-9, 1.0, 3e4):
        g = torch.randn(40, 300, generator=gen) * scale
        g[0, 0] = -g.abs().max() * 2  # the clamped extreme
        exact = _exact_projection(g, signs)
        expected = quantise(g.reshape(1, -1)).to_float() @ signs.to(torch.float64).T  # integers below 2**53: exact
        assert torch.equal(exact, expected[0])
        float_projection = projector.project({"w": g.unsqueeze(0)})[0].double() * math.sqrt(32)
        assert torch.allclose(exact, float_projection, rtol=1e-3, atol=1e-3 * float(float_projection.abs().max()))
    assert torch.equal(_exact_projection(torch.zeros(40, 300), signs), torch.zeros(32, dtype=torch.float64))


def test_the_unit_norm_is_correctly_rounded_and_single_thread_restores_the_setting() -> None:
    x = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert torch.equal(_unit(x), torch.tensor([0.6, 0.8], dtype=torch.float64))
    assert torch.equal(_unit(torch.zeros(3, dtype=torch.float64)), torch.zeros(3, dtype=torch.float64))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with single_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
