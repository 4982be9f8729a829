"""ModelScorer.scores_many: a batch of inferences scored in one pass equals scoring them one at a time."""

from __future__ import annotations

import random

import pytest
import torch
from world import make_world

from attribution_oracle.attribution.shares import canonical_bytes, contributor_shares
from attribution_oracle.factory import CatalogSource, TrainConfig, train_model
from attribution_oracle.factory.scorer import load_model_scorer

CONFIG = TrainConfig(steps=4, batch_size=2, seq_len=48, proj_dim=32, checkpoint_every=2, eval_fraction=0.2)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("batched")
    world = make_world(root)
    result = train_model(CatalogSource(world.catalog), world.store, ["1"], base_spec="tiny:2", config=CONFIG,
                         run_dir=root / "run")  # fmt: skip
    return load_model_scorer(world.store, result.manifest_digest, root / "cache")


def test_a_batch_of_inferences_scores_exactly_as_one_at_a_time(scorer) -> None:
    rng = random.Random(5)
    items = [(list(rng.randbytes(rng.randint(3, 30))), list(rng.randbytes(rng.randint(1, 12)))) for _ in range(11)]
    items.append((list(b"no output"), []))  # an empty output scores nothing, in a batch as alone
    items.append((list(b"Inspect the hive"), list(b" every nine days")))
    alone = [scorer.scores(p, o) for p, o in items]
    batched = scorer.scores_many(items)
    assert batched == alone  # the same IEEE doubles
    assert batched[11] == {} or not any(batched[11].values())
    owners = {c.contribution_id: c.contributor for c in scorer.contributions}
    for a, b in zip(alone, batched, strict=True):
        assert canonical_bytes(contributor_shares(10**18, a, owners)) == canonical_bytes(
            contributor_shares(10**18, b, owners)
        )
    assert scorer.gradient_scores_many(items[:3]) == [scorer.gradient_scores(p, o) for p, o in items[:3]]
