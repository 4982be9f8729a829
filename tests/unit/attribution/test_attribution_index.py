"""The persisted index: round trip, memory-mapped queries, append, top-k, determinism of shares."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from attribution_oracle.attribution import (
    AttributionIndex,
    Attributor,
    ClassificationTask,
    canonical_bytes,
    contributor_shares,
)
from attribution_oracle.attribution.fixed_point import error_bound


def trained_mlp(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(80, 6, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


@pytest.mark.parametrize("estimator", ["influence", "trak", "graddot"])
def test_index_round_trip_and_append(tmp_path, estimator):
    model, x, y = trained_mlp()
    ids = [f"c{i}" for i in range(60)]
    attributor = Attributor(model, ClassificationTask(), estimator=estimator, proj_dim=32, seed=7)
    attributor.featurize((x[:60], y[:60]))
    attributor.build_index(tmp_path / "idx", ids, model_hash="ab" * 32)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["contribution_ids"] == ids and manifest["projection"]["seed"] == 7
    assert manifest["estimator"] == estimator and manifest["model_hash"] == "ab" * 32

    reopened = AttributionIndex(tmp_path / "idx")
    q = attributor.query_features((x[60:65], y[60:65]))
    direct = attributor.score((x[60:65], y[60:65]))
    exact = reopened.scores(q)  # fixed-point scores: within the documented quantisation error of the float product
    bound = error_bound(q, reopened.matrix()) + 1e-4 * direct.abs().max()
    assert exact.dtype == torch.float64 and ((exact - direct).abs() <= bound).all()

    new = attributor.finalize_new((x[60:], y[60:]))
    appended = reopened.append(new, [f"n{i}" for i in range(20)])
    assert len(appended) == 80 and appended.manifest["shards"][-1] == "features-00001.safetensors"
    assert appended.scores(q).shape == (5, 80)
    torch.testing.assert_close(appended.scores(q)[:, :60], reopened.scores(q))
    top = appended.top_k(q, k=3)
    assert len(top) == 5 and len(top[0].ids) == 3
    assert top[0].scores == sorted(top[0].scores, reverse=True)
    assert appended.scores_by_id(q[:1])[top[0].ids[0]] == pytest.approx(top[0].scores[0])


def test_index_rejects_bad_input(tmp_path):
    feats = torch.randn(3, 4)
    index = AttributionIndex.create(tmp_path / "i", feats, ["a", "b", "c"], manifest={})
    with pytest.raises(FileExistsError):
        AttributionIndex.create(tmp_path / "i", feats, ["a", "b", "c"], manifest={})
    with pytest.raises(ValueError, match="already indexed"):
        index.append(torch.randn(1, 4), ["a"])
    with pytest.raises(ValueError, match="dimension"):
        index.append(torch.randn(1, 5), ["d"])
    with pytest.raises(ValueError, match="dimension"):
        index.scores(torch.randn(1, 5))
    with pytest.raises(FileNotFoundError):
        AttributionIndex(tmp_path / "missing")
    with pytest.raises(ValueError, match="unique"):
        AttributionIndex.create(tmp_path / "j", feats, ["a", "a", "c"], manifest={})


def test_two_runs_give_identical_share_bytes():
    outputs = []
    for _ in range(2):
        model, x, y = trained_mlp(seed=3)
        attributor = Attributor(model, ClassificationTask(), proj_dim=16, seed=1).featurize((x[:40], y[:40]))
        scores = attributor.score((x[40:41], y[40:41]))[0].tolist()
        owners = {f"c{i}": f"0x{i % 4}" for i in range(40)}
        shares = contributor_shares(10**18 + 7, dict(zip(owners, scores, strict=True)), owners)
        outputs.append(canonical_bytes(shares))
    assert outputs[0] == outputs[1]
    assert sum(int(v) for v in json.loads(outputs[0]).values()) == 10**18 + 7


def test_projection_is_seeded_and_blockwise():
    from attribution_oracle.attribution import Projector

    shapes = {"w": (5000, 3), "b": (7,)}
    grads = {"w": torch.randn(4, 5000, 3), "b": torch.randn(4, 7)}
    a = Projector(shapes, dim=64, seed=5, cache_bytes=0).project(grads)
    b = Projector(shapes, dim=64, seed=5).project(grads)
    c = Projector(shapes, dim=64, seed=6).project(grads)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
