"""The sketched Gauss-Newton curvature: unbiased for the exact GGN, reproducible, and recorded in the manifest."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attribution_oracle.attribution import Attributor, ClassificationTask
from attribution_oracle.attribution.gradient_attributor import CURVATURES
from attribution_oracle.attribution.task import AttributionTask


def make_model_and_data(seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    return model, (x, torch.randint(0, 4, (40,), generator=gen))


def attributor(curvature: str, samples: int = 2, seed: int = 0) -> tuple[Attributor, tuple]:
    model, data = make_model_and_data()
    engine = Attributor(
        model, ClassificationTask(), proj_dim=None, curvature=curvature, curvature_samples=samples, seed=seed,
        batch_size=16,
    )  # fmt: skip
    return engine, data


def test_sketch_averages_to_the_exact_ggn() -> None:
    exact_engine, data = attributor("ggn")
    exact = exact_engine._ggn(data)
    sketch_engine, _ = attributor("ggn-sketch", samples=400)
    sketch = sketch_engine._ggn_sketch(data, salt=0)
    assert sketch.shape == exact.shape and torch.allclose(sketch, sketch.T)
    error = (sketch - exact).norm() / exact.norm()
    assert error < 0.1  # unbiased: 400 directions per example leave a few percent of noise
    few_engine, _ = attributor("ggn-sketch", samples=1)
    assert (few_engine._ggn_sketch(data, salt=0) - exact).norm() / exact.norm() > error  # fewer samples, more noise


def test_sketched_features_are_reproducible_and_depend_on_the_seed() -> None:
    one, data = attributor("ggn-sketch")
    two, _ = attributor("ggn-sketch")
    other, _ = attributor("ggn-sketch", seed=1)
    a, b, c = (e.featurize(data).train_matrix() for e in (one, two, other))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sketched_influence_scores_track_the_exact_ggn_scores() -> None:
    exact, data = attributor("ggn")
    sketch, _ = attributor("ggn-sketch", samples=4)
    s_exact, s_sketch = exact.featurize(data).score(data), sketch.featurize(data).score(data)
    corr = torch.corrcoef(torch.stack([s_exact.flatten(), s_sketch.flatten()]))[0, 1]
    assert corr > 0.9
    assert sketch.describe()["curvature"] == "ggn-sketch:4" and exact.describe()["curvature"] == "ggn"


def test_curvature_names_are_checked() -> None:
    assert "ggn-sketch" in CURVATURES
    with pytest.raises(ValueError, match="unknown curvature"):
        attributor("ggm")
    with pytest.raises(ValueError, match="curvature_samples"):
        attributor("ggn-sketch", samples=0)
    no_outputs, data = attributor("ggn-sketch")
    no_outputs.task = AttributionTask()
    with pytest.raises(ValueError, match="needs a task that defines outputs"):
        no_outputs.featurize(data)
