"""Known answers: exact influence on logistic regression, leave-one-out retraining, grad-dot by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attribution_oracle.attribution import Attributor, ClassificationTask, margin

L2 = 1e-2


def make_data(n: int = 60, d: int = 5, classes: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w = torch.randn(d, classes, generator=gen, dtype=torch.float64)
    y = (x @ w + 0.8 * torch.randn(n, classes, generator=gen, dtype=torch.float64)).argmax(1)
    return x, y


def objective(model: nn.Module, x, y, n: int) -> torch.Tensor:
    """Sum of losses over ``n`` (the full training set size, also when an example is left out) plus L2."""
    loss = nn.functional.cross_entropy(model(x), y, reduction="sum") / n
    return loss + L2 / 2 * sum((p**2).sum() for p in model.parameters())


def fit(x, y, init: nn.Module | None = None, n: int | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Linear(x.shape[1], 3).double()
    if init is not None:
        model.load_state_dict(init.state_dict())
    opt = torch.optim.LBFGS(model.parameters(), max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        value = objective(model, x, y, n or len(y))
        value.backward()
        return value

    for _ in range(3):
        opt.step(closure)
    return model


def flat_grad(value: torch.Tensor, model: nn.Module) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, list(model.parameters()))])


def test_influence_equals_exact_influence_on_logistic_regression():
    x, y = make_data()
    model = fit(x, y)
    params = list(model.parameters())

    def obj_from_flat(flat):
        w, b = flat[: params[0].numel()].view_as(params[0]), flat[params[0].numel() :]
        loss = nn.functional.cross_entropy(x @ w.T + b, y)
        return loss + L2 / 2 * (flat**2).sum()

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    hessian = torch.autograd.functional.hessian(obj_from_flat, flat)
    queries = (x[:4], y[:4])
    exact = torch.zeros(4, len(y), dtype=torch.float64)
    h_inv = torch.linalg.inv(hessian)
    for q in range(4):
        fq = flat_grad(margin(model(queries[0][q : q + 1]), queries[1][q : q + 1]).sum(), model)
        for i in range(len(y)):
            li = flat_grad(nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), model)
            exact[q, i] = -fq @ h_inv @ li

    attributor = Attributor(
        model, ClassificationTask(), estimator="influence", proj_dim=None, damping=L2, absolute_damping=True
    )
    ours = attributor.featurize((x, y)).score(queries)
    torch.testing.assert_close(ours, exact, rtol=1e-6, atol=1e-8)


def test_influence_ranks_like_leave_one_out_retraining():
    x, y = make_data(n=40, seed=3)
    full = fit(x, y)
    query = (x[:3], y[:3])
    with torch.no_grad():
        f_full = margin(full(query[0]), query[1])
    actual = torch.zeros(3, len(y), dtype=torch.float64)
    for i in range(len(y)):
        keep = torch.arange(len(y)) != i
        without = fit(x[keep], y[keep], init=full, n=len(y))
        with torch.no_grad():
            actual[:, i] = f_full - margin(without(query[0]), query[1])
    attributor = Attributor(full, ClassificationTask(), proj_dim=None, damping=L2, absolute_damping=True)
    predicted = attributor.featurize((x, y)).score(query) / len(y)
    for q in range(3):
        rank_a = actual[q].argsort().argsort().double()
        rank_p = predicted[q].argsort().argsort().double()
        spearman = torch.corrcoef(torch.stack([rank_a, rank_p]))[0, 1]
        pearson = torch.corrcoef(torch.stack([actual[q], predicted[q]]))[0, 1]
        assert spearman > 0.85 and pearson > 0.93, (spearman, pearson)


def test_graddot_is_minus_the_dot_product_of_gradients():
    x, y = make_data(n=10)
    model = fit(x, y)
    scores = Attributor(model, ClassificationTask(), estimator="graddot", proj_dim=None).featurize((x, y))
    got = scores.score((x[:2], y[:2]))
    fq = flat_grad(margin(model(x[1:2]), y[1:2]).sum(), model)
    li = flat_grad(nn.functional.cross_entropy(model(x[7:8]), y[7:8]), model)
    assert got[1, 7].item() == pytest.approx((-fq @ li).item(), rel=1e-9)


def test_tracin_weights_checkpoints_by_learning_rate():
    x, y = make_data(n=12)
    a, b = fit(x, y), fit(x[:6], y[:6])
    single = [
        Attributor(m, ClassificationTask(), estimator="graddot", proj_dim=None).featurize((x, y)).score((x[:2], y[:2]))
        for m in (a, b)
    ]
    tracin = Attributor(
        a, ClassificationTask(), estimator="tracin", proj_dim=None, checkpoints=[a.state_dict(), b.state_dict()],
        checkpoint_weights=[0.1, 0.3],
    )  # fmt: skip
    got = tracin.featurize((x, y)).score((x[:2], y[:2]))
    torch.testing.assert_close(got, (0.1 * single[0] + 0.3 * single[1]) / 2)


def test_projection_preserves_scores_approximately():
    x, y = make_data(n=50)
    model = fit(x, y)
    exact = Attributor(model, ClassificationTask(), estimator="graddot", proj_dim=None).featurize((x, y))
    projected = Attributor(model, ClassificationTask(), estimator="graddot", proj_dim=4096, seed=1).featurize((x, y))
    e, p = exact.score((x[:5], y[:5])), projected.score((x[:5], y[:5]))
    assert torch.corrcoef(torch.stack([e.flatten(), p.flatten()]))[0, 1] > 0.95


def test_unknown_estimator_and_parameters_are_rejected():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="unknown estimator"):
        Attributor(model, ClassificationTask(), estimator="magic")
    with pytest.raises(ValueError, match="unknown parameter names"):
        Attributor(model, ClassificationTask(), params=["nope"])
    with pytest.raises(RuntimeError, match="featurize"):
        Attributor(model, ClassificationTask()).score((torch.randn(2, 3), torch.tensor([0, 1])))
