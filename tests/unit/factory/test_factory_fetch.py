"""Fetching training data: versions resolve, roots are recomputed, bad data is refused before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from world import TEXTS, make_world

from attribution_oracle.errors import UserError
from attribution_oracle.factory import (
    CatalogSource,
    DataVerificationError,
    FactoryError,
    TrainConfig,
    fetch_training_data,
    parse_datanet_spec,
    train_model,
)

SMALL = TrainConfig(steps=2, batch_size=2, seq_len=32, proj_dim=16, attribution_checkpoints=1)


def test_fetch_returns_every_approved_document_in_approval_order(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    data = fetch_training_data(CatalogSource(world.catalog), world.store, ["1"])
    (version,) = data.versions
    assert (version.datanet_id, version.version, version.count, version.merkle_root) == (1, 1, len(TEXTS), world.root)
    assert [d.data.decode() for d in data.documents] == TEXTS
    assert [d.key for d in data.documents] == [str(i + 1) for i in range(len(TEXTS))]
    assert fetch_training_data(CatalogSource(world.catalog), world.store, ["1@1"]).documents == data.documents


@pytest.mark.parametrize("spec", ["x", "1@", "@1", "1@v2", ""])
def test_bad_specs_are_user_errors(spec: str) -> None:
    with pytest.raises(FactoryError, match="ID or ID@VERSION"):
        parse_datanet_spec(spec)


def _refused(tmp_path: Path, world, specs: list[str], match: str) -> None:
    before = sorted(world.store.digests())
    with pytest.raises(DataVerificationError, match=match) as info:
        train_model(CatalogSource(world.catalog), world.store, specs, base_spec="tiny:0", config=SMALL,
                    runs_root=tmp_path / "runs")  # fmt: skip
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)
    assert not (tmp_path / "runs").exists()
    assert sorted(world.store.digests()) == before


def test_training_refuses_a_tampered_blob(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    path = world.store.path_of(world.hashes[3])
    os.chmod(path, 0o644)
    path.write_bytes(b"Honey is ready whenever you like; moisture does not matter.")
    _refused(tmp_path, world, ["1"], "contribution 4 of datanet 1@1: blob .* is tampered")


def test_training_refuses_a_missing_blob(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    path = world.store.path_of(world.hashes[0])
    os.chmod(path.parent, 0o755)
    path.unlink()
    _refused(tmp_path, world, ["1@1"], "contribution 1 .* is not in the content store")


def test_training_refuses_an_unpublished_version(tmp_path: Path) -> None:
    world = make_world(tmp_path, publish=False)
    _refused(tmp_path, world, ["1"], "datanet 1 has no published version to train on")
    _refused(tmp_path, world, ["1@1"], "datanet 1 has no published version 1")


def test_training_refuses_an_unknown_datanet_or_version(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    _refused(tmp_path, world, ["7"], "unknown datanet 7")
    _refused(tmp_path, world, ["1@2"], "no published version 2")
    _refused(tmp_path, world, ["1", "1@1"], "datanet 1 is given twice")


class _LyingSource(CatalogSource):
    """A source whose approved list was altered (one hash swapped for another stored blob)."""

    def __init__(self, world) -> None:
        super().__init__(world.catalog)
        self.extra = world.store.put_bytes(b"an unapproved document slipped into the list")

    def approved(self, datanet_id: int, count: int):
        rows = super().approved(datanet_id, count)
        rows[2] = type(rows[2])(rows[2].datanet_id, rows[2].contribution_id, rows[2].contributor, self.extra)
        return rows


def test_training_refuses_hashes_that_do_not_give_the_on_chain_root(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    with pytest.raises(DataVerificationError, match="the approved hashes give root .* the chain has"):
        fetch_training_data(_LyingSource(world), world.store, ["1"])
