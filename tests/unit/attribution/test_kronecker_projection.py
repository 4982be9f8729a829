"""The Kronecker (LoGra-style) projection: equal to the dense projection with the explicit Kronecker matrix, for
loss gradients, sequence inputs and the Gauss-Newton curvature; reproducible per seed; refused where it cannot apply."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attribution_oracle.attribution import Attributor, ClassificationTask
from attribution_oracle.attribution.gradient_attributor import PROJECTIONS
from attribution_oracle.attribution.gradients import flatten, per_example_grads, per_example_output_jacobians
from attribution_oracle.attribution.kronecker_projection import KroneckerProjector, kronecker_layers, split_dims
from attribution_oracle.attribution.linear_factors import linear_factors


def mlp_and_data(seed: int = 0, n: int = 24) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, 7, bias=False), nn.ReLU(), nn.Linear(7, 4))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen, dtype=torch.float64)
    return model.double(), (x, torch.randint(0, 4, (n,), generator=gen))


def engine(model: nn.Module, proj_dim: int | None = 40, seed: int = 0, **kwargs) -> Attributor:
    return Attributor(
        model, ClassificationTask(), proj_dim=proj_dim, projection="kronecker", seed=seed, batch_size=10, **kwargs
    )


@settings(max_examples=12, deadline=None)
@given(dim=st.integers(3, 160), seed=st.integers(0, 2**31 - 1))
def test_factor_projection_equals_the_dense_kronecker_matrix(dim: int, seed: int) -> None:
    model, data = mlp_and_data()
    attributor = engine(model, proj_dim=dim, seed=seed)
    matrix = attributor.projector.dense_matrix()
    assert matrix.shape == (sum(p.numel() for p in model.parameters()), attributor.projector.out_dim)
    assert attributor.projector.out_dim <= dim
    grads = per_example_grads(model, attributor.task.loss, attributor.names, data)
    dense = flatten(grads, attributor.names) @ matrix
    assert torch.allclose(attributor._project(attributor.task.loss, data), dense, atol=1e-12)
    assert torch.allclose(attributor.projector.project(grads), dense, atol=1e-12)


def test_kronecker_ggn_equals_the_projected_exact_ggn() -> None:
    model, data = mlp_and_data()
    attributor = engine(model, proj_dim=50)
    matrix = attributor.projector.dense_matrix()
    jac = flatten(
        per_example_output_jacobians(model, attributor.task.outputs, attributor.names, data), attributor.names, 2
    )
    rows = jac @ matrix  # [B, C, k]
    with torch.no_grad():
        hessian = attributor.task.output_hessian(model(data[0]), data)
    expected = torch.einsum("bck,bcd,bdl->kl", rows, hessian, rows)
    got = attributor._ggn(data)
    assert torch.allclose(got, got.T) and torch.allclose(got, expected, atol=1e-10)


def test_sequence_inputs_sum_their_positions() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 6), nn.GELU(), nn.Linear(6, 3)).double()
    x = torch.randn(8, 4, 5, dtype=torch.float64)  # 8 examples of 4 positions
    layers = kronecker_layers(model, [n for n, _ in model.named_parameters()])
    projector = KroneckerProjector(layers, dim=20, seed=2)

    def fn(m: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return m(batch).square().sum(dim=(-1, -2))

    factors = linear_factors(model, fn, layers, x)
    grads = per_example_grads(model, fn, [n for n, _ in model.named_parameters()], x)
    dense = flatten(grads, list(projector.shapes)) @ projector.dense_matrix()
    assert torch.allclose(projector.project_factors(factors), dense, atol=1e-12)


def test_whole_gradients_give_the_dense_identity_scores() -> None:
    model, data = mlp_and_data()
    kron = engine(model, proj_dim=None)
    dense = Attributor(model, ClassificationTask(), proj_dim=None, batch_size=10)
    assert kron.projector.dim is None and kron.describe()["identity_projection"]
    assert torch.allclose(kron.featurize(data).score(data), dense.featurize(data).score(data), atol=1e-9)


def test_kronecker_features_are_reproducible_and_depend_on_the_seed() -> None:
    model, data = mlp_and_data()
    a, b, c = (engine(model, seed=s).featurize(data).train_matrix() for s in (5, 5, 6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    manifest = engine(model, seed=5).describe()["projection"]
    assert manifest["kind"] == "kronecker-rademacher" and manifest["seed"] == 5
    assert manifest["dim"] == sum(o * i for o, i in manifest["factors"])


def test_kronecker_scores_track_the_dense_projection_scores() -> None:
    model, data = mlp_and_data(n=60)
    kron = engine(model, proj_dim=200).featurize(data).score(data)
    dense = Attributor(model, ClassificationTask(), proj_dim=200, batch_size=10).featurize(data).score(data)
    assert torch.corrcoef(torch.stack([kron.flatten(), dense.flatten()]))[0, 1] > 0.9


def test_split_dims_share_the_budget() -> None:
    model, _ = mlp_and_data()
    layers = kronecker_layers(model, [n for n, _ in model.named_parameters()])
    for dim in (3, 10, 64, 100, 10_000):
        dims = split_dims(layers, dim)
        assert sum(o * i for o, i in dims) <= dim
        assert all(1 <= o <= s.out_features and 1 <= i <= s.width for (o, i), s in zip(dims, layers, strict=True))
    assert split_dims(layers, 10_000) == [(s.out_features, s.width) for s in layers]  # everything kept whole


def test_kronecker_projection_refuses_what_it_cannot_project() -> None:
    assert PROJECTIONS == ("dense", "kronecker")
    model, _ = mlp_and_data()
    with pytest.raises(ValueError, match="unknown projection"):
        Attributor(model, ClassificationTask(), projection="kron")
    with pytest.raises(ValueError, match="preconditioner"):
        engine(model, preconditioner={n: torch.ones_like(p) for n, p in model.named_parameters()})
    normed = nn.Sequential(nn.Linear(6, 4), nn.LayerNorm(4)).double()
    with pytest.raises(ValueError, match="nn.Linear weights and biases only"):
        engine(normed)


def checkpoints_of(seeds: tuple[int, ...]) -> list[dict[str, torch.Tensor]]:
    return [mlp_and_data(seed)[0].state_dict() for seed in seeds]


@pytest.mark.parametrize("estimator,curvature", [("influence", "ggn"), ("influence", "fisher"), ("trak", "auto"),
                                                 ("graddot", "auto"), ("tracin", "auto")])  # fmt: skip
def test_factored_dense_projection_gives_the_dense_features(estimator: str, curvature: str) -> None:
    model, data = mlp_and_data(n=30)
    query = mlp_and_data(seed=9, n=7)[1]
    kwargs = {"checkpoints": checkpoints_of((1, 2, 3)), "estimator": estimator, "curvature": curvature}
    dense = Attributor(model, ClassificationTask(), proj_dim=48, seed=4, batch_size=8, **kwargs).featurize(data)
    fast = Attributor(model, ClassificationTask(), proj_dim=48, seed=4, batch_size=8, factored=True, **kwargs)
    fast.featurize(data)
    assert fast._factored is not None and fast.describe() == dense.describe()
    for got, want in zip(fast.train_features, dense.train_features, strict=True):
        assert torch.allclose(got.features, want.features, rtol=1e-9, atol=1e-10)
        assert got.transform is None or torch.allclose(got.transform, want.transform, rtol=1e-9, atol=1e-10)
    assert torch.allclose(fast.query_features(query), dense.query_features(query), rtol=1e-9, atol=1e-12)
    assert torch.allclose(fast.score(query), dense.score(query), rtol=1e-9, atol=1e-10)
    assert torch.allclose(fast.finalize_new(query), dense.finalize_new(query), rtol=1e-5, atol=1e-6)


def test_factored_ggn_equals_the_dense_ggn_and_is_reproducible() -> None:
    model, data = mlp_and_data(n=30)
    dense = Attributor(model, ClassificationTask(), proj_dim=40, seed=8, batch_size=8)
    fast = Attributor(model, ClassificationTask(), proj_dim=40, seed=8, batch_size=8, factored=True)
    [(_, gram)] = fast._factored_pass(fast.task.loss, data, ggn=True)
    assert torch.allclose(gram, dense._ggn(data), rtol=1e-9, atol=1e-10)
    again = Attributor(model, ClassificationTask(), proj_dim=40, seed=8, batch_size=8, factored=True)
    assert torch.equal(again.featurize(data).train_matrix(), fast.featurize(data).train_matrix())


def test_factored_projection_refuses_sequences_and_preconditioners() -> None:
    model, _ = mlp_and_data()
    with pytest.raises(ValueError, match="preconditioner"):
        Attributor(model, ClassificationTask(), proj_dim=20, factored=True,
                   preconditioner={n: torch.ones_like(p) for n, p in model.named_parameters()})  # fmt: skip
    sequence_model = nn.Sequential(nn.Linear(5, 3)).double()
    engine_ = Attributor(sequence_model, ClassificationTask(), proj_dim=8, factored=True)
    with pytest.raises(ValueError, match="one input vector per example"):
        engine_._project(lambda m, x: m(x).sum(dim=(-1, -2)), torch.randn(4, 6, 5, dtype=torch.float64))


def test_factored_projection_of_a_frozen_model_through_a_parameter_subset() -> None:
    model, data = mlp_and_data(n=20)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    names = ["2.weight", "4.weight", "4.bias"]  # layer 0 not attributed; no parameter needs a gradient
    dense = Attributor(model, ClassificationTask(), params=names, proj_dim=16, batch_size=8).featurize(data)
    fast = Attributor(model, ClassificationTask(), params=names, proj_dim=16, batch_size=8, factored=True)
    assert [layer.module for layer in fast.layers] == ["2", "4"] and fast.layers[0].bias is None
    assert torch.allclose(fast.featurize(data).score(data), dense.score(data), rtol=1e-9, atol=1e-10)


class _PooledTask(ClassificationTask):
    """Classification of sequences whose logits are the model's outputs summed over positions."""

    def loss(self, model: nn.Module, batch):
        inputs, labels = batch
        return nn.functional.cross_entropy(model(inputs).sum(1), labels, reduction="none")

    def outputs(self, model: nn.Module, batch) -> torch.Tensor:
        return model(batch[0]).sum(1)


def test_kronecker_ggn_of_sequence_inputs_equals_the_projected_exact_ggn() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    gen = torch.Generator().manual_seed(5)
    data = (torch.randn(9, 4, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (9,), generator=gen))
    task = _PooledTask()
    attributor = Attributor(model, task, proj_dim=24, projection="kronecker", batch_size=4)
    rows = flatten(per_example_output_jacobians(model, task.outputs, attributor.names, data), attributor.names, 2)
    rows = rows @ attributor.projector.dense_matrix()
    with torch.no_grad():
        hessian = task.output_hessian(task.outputs(model, data), data)
    expected = torch.einsum("bck,bcd,bdl->kl", rows, hessian, rows)
    assert torch.allclose(attributor._ggn(data), expected, atol=1e-10)
