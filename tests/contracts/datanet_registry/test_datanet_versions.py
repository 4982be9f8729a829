"""DatanetRegistry: published versions, paged views and the Merkle cross-check with Python."""

from __future__ import annotations

import random

import ape
import pytest
from contract_helpers import (
    EMPTY_BYTES32,
    MAX_UINT256,
    STATUS_APPROVED,
    STATUS_PENDING,
    content_hash,
)
from datanet_registry_helpers import MAX_PAGE, approve_all, submit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution_oracle.store.merkle import MerkleTree, leaf_hash

# ---------------------------------------------------------------- versions


def test_publish_version(registry, datanet, alice, bob, chain):
    ids = approve_all(registry, datanet, alice, ["a", "b"], bob)
    hashes = [content_hash("a"), content_hash("b")]
    assert list(registry.getApprovedHashes(datanet, 0, 10)) == hashes
    root = MerkleTree(hashes).root
    tx = registry.publishVersion(datanet, root, 2, "ipfs://manifest-1", sender=alice)
    assert tx.return_value == 1
    assert [
        registry.VersionPublished(
            datanetId=datanet, version=1, merkleRoot=root, count=2, manifestURI="ipfs://manifest-1"
        )
    ] == tx.events.filter(registry.VersionPublished)
    v = registry.getVersion(datanet, 1)
    assert (v.merkleRoot, v.count, v.manifestURI, v.publishedAt) == (root, 2, "ipfs://manifest-1", tx.timestamp)
    assert registry.versionExists(datanet, 1)
    assert not registry.versionExists(datanet, 2)
    assert registry.getDatanet(datanet).versionCount == 1

    registry.approve(submit(registry, bob, datanet, "c"), sender=alice)
    root2 = MerkleTree([*hashes, content_hash("c")]).root
    tx = registry.publishVersion(datanet, root2, 3, "ipfs://manifest-2", sender=alice)
    assert tx.return_value == 2
    assert registry.getVersion(datanet, 1).merkleRoot == root  # unchanged
    assert registry.getVersion(datanet, 2).count == 3
    assert len(ids) == 2


def test_publish_version_reverts(registry, curated, alice, bob, carol):
    root = MerkleTree([content_hash("a")]).root
    with ape.reverts("DatanetRegistry: nothing approved"):
        registry.publishVersion(curated, root, 0, "", sender=alice)
    approve_all(registry, curated, alice, ["a"], carol)
    with ape.reverts("DatanetRegistry: caller is not the datanet owner"):
        registry.publishVersion(curated, root, 1, "", sender=bob)  # a curator may not publish
    with ape.reverts("DatanetRegistry: caller is not the datanet owner"):
        registry.publishVersion(curated, root, 1, "", sender=carol)
    with ape.reverts("DatanetRegistry: unknown datanet"):
        registry.publishVersion(curated + 1, root, 1, "", sender=alice)
    with ape.reverts("DatanetRegistry: empty root"):
        registry.publishVersion(curated, EMPTY_BYTES32, 1, "", sender=alice)
    with ape.reverts("DatanetRegistry: count is not the approved count"):
        registry.publishVersion(curated, root, 0, "", sender=alice)
    with ape.reverts("DatanetRegistry: count is not the approved count"):
        registry.publishVersion(curated, root, 2, "", sender=alice)
    registry.publishVersion(curated, root, 1, "", sender=alice)
    with ape.reverts("DatanetRegistry: nothing new to publish"):
        registry.publishVersion(curated, root, 1, "", sender=alice)
    # Pending and rejected contributions do not count.
    submit(registry, carol, curated, "b")
    registry.reject(submit(registry, carol, curated, "c"), False, sender=alice)
    with ape.reverts("DatanetRegistry: nothing new to publish"):
        registry.publishVersion(curated, root, 1, "", sender=alice)
    with ape.reverts("DatanetRegistry: count is not the approved count"):
        registry.publishVersion(curated, root, 2, "", sender=alice)
    assert registry.getDatanet(curated).versionCount == 1


def test_unknown_version(registry, datanet, create_datanet, alice, bob):
    other = create_datanet(bob, 0)
    approve_all(registry, datanet, alice, ["a"], bob)
    registry.publishVersion(datanet, MerkleTree([content_hash("a")]).root, 1, "", sender=alice)
    for d, v in ((datanet, 0), (datanet, 2), (other, 1), (99, 1)):
        with ape.reverts("DatanetRegistry: unknown version"):
            registry.getVersion(d, v)
        assert not registry.versionExists(d, v)
        assert not registry.verifyContribution(d, v, content_hash("a"), [])


def test_unknown_datanet_views(registry, datanet):
    for bad in (0, datanet + 1):
        with ape.reverts("DatanetRegistry: unknown datanet"):
            registry.getDatanet(bad)
        with ape.reverts("DatanetRegistry: unknown datanet"):
            registry.getContributions(bad, 0, 10)
        with ape.reverts("DatanetRegistry: unknown datanet"):
            registry.getApprovedHashes(bad, 0, 10)


# ---------------------------------------------------------------- paged views


def test_get_datanets_paging(registry, governance, alice, bob):
    registry.setCreationFee(0, sender=governance)
    assert list(registry.getDatanets(0, 10)) == []
    owners = [alice, bob, alice, bob, alice]
    for i, owner in enumerate(owners):
        registry.createDatanet(f"d{i}", f"ipfs://{i}", i, sender=owner)
    page = registry.getDatanets(0, 10)
    assert [d.name for d in page] == [f"d{i}" for i in range(5)]
    assert [d.owner for d in page] == [o.address for o in owners]
    assert [d.name for d in registry.getDatanets(1, 2)] == ["d1", "d2"]
    assert [d.name for d in registry.getDatanets(3, 100)] == ["d3", "d4"]
    assert list(registry.getDatanets(5, 10)) == []
    assert list(registry.getDatanets(6, 10)) == []
    assert list(registry.getDatanets(MAX_UINT256, 10)) == []
    assert list(registry.getDatanets(0, 0)) == []


def test_get_datanets_page_capped(registry, governance, alice):
    registry.setCreationFee(0, sender=governance)
    for i in range(MAX_PAGE + 1):
        registry.createDatanet(f"d{i}", "", 0, sender=alice)
    page = registry.getDatanets(0, MAX_UINT256)
    assert len(page) == MAX_PAGE
    assert page[-1].name == f"d{MAX_PAGE - 1}"
    assert [d.name for d in registry.getDatanets(MAX_PAGE, MAX_UINT256)] == [f"d{MAX_PAGE}"]


def test_get_contributions_paging(registry, datanet, create_datanet, alice, bob, carol):
    other = create_datanet(carol, 0)
    submit(registry, bob, datanet, "a")
    submit(registry, carol, other, "x")  # interleaved with another Datanet's contributions
    submit(registry, carol, datanet, "b")
    submit(registry, bob, datanet, "c")
    registry.approve(3, sender=alice)
    page = registry.getContributions(datanet, 0, 10)
    assert [c.id for c in page] == [1, 3, 4]
    assert [c.contentHash for c in page] == [content_hash(x) for x in "abc"]
    assert [c.status for c in page] == [STATUS_PENDING, STATUS_APPROVED, STATUS_PENDING]
    assert [c.contributor for c in page] == [bob.address, carol.address, bob.address]
    assert [c.id for c in registry.getContributions(datanet, 1, 1)] == [3]
    assert [c.id for c in registry.getContributions(datanet, 2, 5)] == [4]
    assert list(registry.getContributions(datanet, 3, 5)) == []
    assert list(registry.getContributions(datanet, 10, 5)) == []
    assert list(registry.getContributions(datanet, 0, 0)) == []
    assert [c.id for c in registry.getContributions(other, 0, 10)] == [2]


def test_get_approved_hashes_in_approval_order(registry, curated, alice, bob, carol):
    ids = [submit(registry, carol, curated, label) for label in "abcde"]
    # Approve out of submission order, mixing owner and curator; reject one.
    registry.approve(ids[3], sender=bob)
    registry.approve(ids[0], sender=alice)
    registry.reject(ids[1], False, sender=alice)
    registry.approve(ids[4], sender=bob)
    expected = [content_hash(x) for x in "dae"]
    assert list(registry.getApprovedHashes(curated, 0, 10)) == expected
    assert list(registry.getApprovedHashes(curated, 1, 1)) == expected[1:2]
    assert list(registry.getApprovedHashes(curated, 2, 10)) == expected[2:]
    assert list(registry.getApprovedHashes(curated, 3, 10)) == []
    assert list(registry.getApprovedHashes(curated, 50, 10)) == []
    assert list(registry.getApprovedHashes(curated, 0, 0)) == []
    assert registry.getDatanet(curated).approvedCount == 3


# ---------------------------------------------------------------- Merkle cross-check


@pytest.mark.parametrize("size", [1, 2, 3, 7, 33])
def test_merkle_cross_check(registry, create_datanet, alice, bob, size):
    rng = random.Random(size)
    datanet = create_datanet(alice, 0)
    ids = [submit(registry, bob, datanet, f"{size}-{i}", 0) for i in range(size + 1)]
    never_approved = content_hash(f"{size}-{size}")  # the last one stays pending
    approved_ids = ids[:size]
    rng.shuffle(approved_ids)
    for cid in approved_ids:
        registry.approve(cid, sender=alice)

    hashes = list(registry.getApprovedHashes(datanet, 0, MAX_PAGE))
    assert hashes == [registry.getContribution(cid).contentHash for cid in approved_ids]
    tree = MerkleTree(hashes)
    registry.publishVersion(datanet, tree.root, size, "ipfs://v1", sender=alice)

    for i, h in enumerate(hashes):
        assert registry.leafOf(h) == leaf_hash(h) == tree.leaves[i]
        proof = tree.proof(i)
        assert registry.verifyContribution(datanet, 1, h, proof), f"leaf {i} of {size}"
        # The same proof for a hash that is not in the tree, or against a version that does not exist.
        assert not registry.verifyContribution(datanet, 1, never_approved, proof)
        assert not registry.verifyContribution(datanet, 2, h, proof)
        assert not registry.verifyContribution(datanet, 0, h, proof)
        if proof:
            tampered = list(proof)
            tampered[rng.randrange(len(proof))] = content_hash("tampered")
            assert not registry.verifyContribution(datanet, 1, h, tampered)
            assert not registry.verifyContribution(datanet, 1, h, proof[:-1])
        else:
            assert not registry.verifyContribution(datanet, 1, h, [content_hash("extra")])
        if size > 2:
            other = (i + 1) % size
            if tree.proof(other) != proof:
                assert not registry.verifyContribution(datanet, 1, h, tree.proof(other))


def test_merkle_versions_are_independent(registry, create_datanet, alice, bob):
    datanet = create_datanet(alice, 0)
    first = [content_hash(f"v1-{i}") for i in range(5)]
    for h in first:
        registry.approve(submit(registry, bob, datanet, h, 0), sender=alice)
    tree1 = MerkleTree(first)
    registry.publishVersion(datanet, tree1.root, 5, "", sender=alice)

    second = [content_hash(f"v2-{i}") for i in range(4)]
    for h in second:
        registry.approve(submit(registry, bob, datanet, h, 0), sender=alice)
    tree2 = MerkleTree(first + second)
    registry.publishVersion(datanet, tree2.root, 9, "", sender=alice)

    assert registry.getVersion(datanet, 1).merkleRoot == tree1.root
    assert registry.getVersion(datanet, 2).merkleRoot == tree2.root
    for i, h in enumerate(first):
        assert registry.verifyContribution(datanet, 1, h, tree1.proof(i))
        assert registry.verifyContribution(datanet, 2, h, tree2.proof(i))
    for j, h in enumerate(second):
        # Contributions approved after version 1 are only in version 2.
        assert registry.verifyContribution(datanet, 2, h, tree2.proof(5 + j))
        assert not registry.verifyContribution(datanet, 1, h, tree2.proof(5 + j))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.binary(min_size=32, max_size=32))
def test_leaf_of_matches_python(datanet_registry, value):
    assert datanet_registry.leafOf(value) == leaf_hash(value)
