"""DatanetRegistry: fees, stakes, curation, the duplicate rule, versions, paged views and Merkle proofs."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace

import ape
import pytest
from contract_helpers import (
    CREATION_FEE,
    EMPTY_BYTES32,
    MAX_UINT256,
    ONE,
    STATUS_APPROVED,
    STATUS_PENDING,
    STATUS_REJECTED,
    STATUS_SLASHED,
    STATUS_WITHDRAWN,
    ZERO_ADDRESS,
    content_hash,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from attribution_oracle.store.merkle import MerkleTree, leaf_hash

MIN_STAKE = ONE
STAKE = 3 * ONE
MAX_PAGE = 100


@pytest.fixture
def registry(datanet_registry, funded):
    return datanet_registry


@pytest.fixture
def datanet(create_datanet, alice):
    """Datanet 1, owned by Alice, min stake 1 OPEN."""
    return create_datanet(alice, MIN_STAKE)


@pytest.fixture
def curated(registry, datanet, alice, bob):
    """Datanet 1 with Bob appointed curator."""
    registry.setCurator(datanet, bob, True, sender=alice)
    return datanet


def submit(registry, account, datanet_id, label, stake=STAKE, uri="file://blob", size=1024):
    h = label if isinstance(label, bytes) else content_hash(label)
    tx = registry.contribute(datanet_id, h, uri, size, stake, sender=account)
    return tx.return_value


def approve_all(registry, datanet_id, owner, labels, contributor, stake=MIN_STAKE):
    ids = [submit(registry, contributor, datanet_id, label, stake) for label in labels]
    for cid in ids:
        registry.approve(cid, sender=owner)
    return ids


# ---------------------------------------------------------------- deployment and governance


def test_deployment(datanet_registry, token, treasury, governance):
    assert datanet_registry.token() == token.address
    assert datanet_registry.treasury() == treasury
    assert datanet_registry.creationFee() == CREATION_FEE
    assert datanet_registry.owner() == governance
    assert datanet_registry.datanetCount() == 0
    assert datanet_registry.contributionCount() == 0


def test_constructor_rejects_zero_treasury(project, token, governance):
    with ape.reverts("DatanetRegistry: zero treasury"):
        project.DatanetRegistry.deploy(token, ZERO_ADDRESS, CREATION_FEE, sender=governance)


def test_set_creation_fee_governance_only(registry, governance, alice, treasury, token):
    with ape.reverts("ownable: caller is not the owner"):
        registry.setCreationFee(1, sender=alice)
    tx = registry.setCreationFee(2 * CREATION_FEE, sender=governance)
    assert [registry.CreationFeeSet(fee=2 * CREATION_FEE)] == tx.events.filter(registry.CreationFeeSet)
    assert registry.creationFee() == 2 * CREATION_FEE
    before = token.balanceOf(treasury)
    registry.createDatanet("d", "", 0, sender=alice)
    assert token.balanceOf(treasury) - before == 2 * CREATION_FEE


def test_set_treasury_governance_only(registry, governance, alice, bob, carol, token, treasury):
    with ape.reverts("ownable: caller is not the owner"):
        registry.setTreasury(alice, sender=alice)
    with ape.reverts("DatanetRegistry: zero treasury"):
        registry.setTreasury(ZERO_ADDRESS, sender=governance)
    tx = registry.setTreasury(carol, sender=governance)
    assert [registry.TreasurySet(treasury=carol)] == tx.events.filter(registry.TreasurySet)
    assert registry.treasury() == carol

    old_treasury_balance = token.balanceOf(treasury)
    carol_before = token.balanceOf(carol)
    datanet_id = registry.createDatanet("d", "", MIN_STAKE, sender=alice).return_value
    cid = submit(registry, bob, datanet_id, "x")
    registry.reject(cid, True, sender=alice)
    assert token.balanceOf(carol) - carol_before == CREATION_FEE + STAKE
    assert token.balanceOf(treasury) == old_treasury_balance


def test_governance_transfer(registry, governance, alice):
    registry.transfer_ownership(alice, sender=governance)
    assert registry.owner() == alice
    with ape.reverts("ownable: caller is not the owner"):
        registry.setCreationFee(0, sender=governance)
    registry.setCreationFee(0, sender=alice)
    assert registry.creationFee() == 0
    with ape.reverts("ownable: caller is not the owner"):
        registry.transfer_ownership(governance, sender=governance)
    with ape.reverts("ownable: new owner is the zero address"):
        registry.transfer_ownership(ZERO_ADDRESS, sender=alice)


# ---------------------------------------------------------------- datanets


def test_create_datanet_charges_fee(registry, token, alice, treasury, chain):
    alice_before = token.balanceOf(alice)
    treasury_before = token.balanceOf(treasury)
    tx = registry.createDatanet("medical-qa", "ipfs://meta", MIN_STAKE, sender=alice)
    assert tx.return_value == 1
    assert token.balanceOf(treasury) - treasury_before == CREATION_FEE
    assert alice_before - token.balanceOf(alice) == CREATION_FEE
    assert token.balanceOf(registry) == 0
    assert [
        registry.DatanetCreated(
            datanetId=1,
            owner=alice,
            name="medical-qa",
            metadataURI="ipfs://meta",
            minStake=MIN_STAKE,
            feePaid=CREATION_FEE,
        )
    ] == tx.events.filter(registry.DatanetCreated)
    d = registry.getDatanet(1)
    assert d.owner == alice
    assert d.name == "medical-qa"
    assert d.metadataURI == "ipfs://meta"
    assert d.minStake == MIN_STAKE
    assert (d.contributionCount, d.approvedCount, d.versionCount) == (0, 0, 0)
    assert d.createdAt == tx.timestamp
    assert registry.datanetCount() == 1
    assert registry.createDatanet("legal", "", 0, sender=alice).return_value == 2


def test_create_datanet_needs_fee_allowance_and_balance(registry, token, accounts, governance):
    stranger = accounts[8]
    with ape.reverts("erc20: insufficient allowance"):
        registry.createDatanet("d", "", 0, sender=stranger)
    token.approve(registry, CREATION_FEE, sender=stranger)
    with ape.reverts("erc20: transfer amount exceeds balance"):
        registry.createDatanet("d", "", 0, sender=stranger)
    token.mint(stranger, CREATION_FEE, sender=governance)
    registry.createDatanet("d", "", 0, sender=stranger)
    assert token.balanceOf(stranger) == 0


def test_create_datanet_free_when_fee_is_zero(registry, governance, accounts, token, treasury):
    registry.setCreationFee(0, sender=governance)
    stranger = accounts[8]
    before = token.balanceOf(treasury)
    tx = registry.createDatanet("free", "", 0, sender=stranger)
    assert [registry.DatanetCreated(datanetId=1, owner=stranger, feePaid=0)] == tx.events.filter(
        registry.DatanetCreated
    )
    assert token.balanceOf(treasury) == before
    assert not tx.events.filter(token.Transfer)


def test_create_datanet_empty_name(registry, alice):
    with ape.reverts("DatanetRegistry: empty name"):
        registry.createDatanet("", "ipfs://meta", 0, sender=alice)


def test_set_curator(registry, datanet, alice, bob, carol):
    assert not registry.isCurator(datanet, bob)
    tx = registry.setCurator(datanet, bob, True, sender=alice)
    assert [registry.CuratorSet(datanetId=datanet, curator=bob, enabled=True)] == tx.events.filter(registry.CuratorSet)
    assert registry.isCurator(datanet, bob)
    with ape.reverts("DatanetRegistry: caller is not the datanet owner"):
        registry.setCurator(datanet, carol, True, sender=bob)
    with ape.reverts("DatanetRegistry: zero curator"):
        registry.setCurator(datanet, ZERO_ADDRESS, True, sender=alice)
    with ape.reverts("DatanetRegistry: unknown datanet"):
        registry.setCurator(datanet + 1, carol, True, sender=alice)
    registry.setCurator(datanet, bob, False, sender=alice)
    assert not registry.isCurator(datanet, bob)


def test_set_min_stake(registry, datanet, alice, bob):
    with ape.reverts("DatanetRegistry: caller is not the datanet owner"):
        registry.setMinStake(datanet, 0, sender=bob)
    with ape.reverts("DatanetRegistry: unknown datanet"):
        registry.setMinStake(0, 0, sender=alice)
    tx = registry.setMinStake(datanet, 5 * ONE, sender=alice)
    assert [registry.MinStakeSet(datanetId=datanet, minStake=5 * ONE)] == tx.events.filter(registry.MinStakeSet)
    assert registry.getDatanet(datanet).minStake == 5 * ONE
    with ape.reverts("DatanetRegistry: stake below minimum"):
        submit(registry, bob, datanet, "a", 5 * ONE - 1)
    submit(registry, bob, datanet, "a", 5 * ONE)


def test_transfer_datanet_ownership(registry, datanet, alice, bob, carol):
    cid = submit(registry, carol, datanet, "a")
    with ape.reverts("DatanetRegistry: caller is not the datanet owner"):
        registry.transferDatanetOwnership(datanet, bob, sender=bob)
    with ape.reverts("DatanetRegistry: zero owner"):
        registry.transferDatanetOwnership(datanet, ZERO_ADDRESS, sender=alice)
    with ape.reverts("DatanetRegistry: unknown datanet"):
        registry.transferDatanetOwnership(7, bob, sender=alice)
    tx = registry.transferDatanetOwnership(datanet, bob, sender=alice)
    assert [registry.DatanetOwnerChanged(datanetId=datanet, previousOwner=alice, newOwner=bob)] == tx.events.filter(
        registry.DatanetOwnerChanged
    )
    assert registry.getDatanet(datanet).owner == bob
    with ape.reverts("DatanetRegistry: caller is not a curator"):
        registry.approve(cid, sender=alice)
    with ape.reverts("DatanetRegistry: caller is not the datanet owner"):
        registry.setCurator(datanet, carol, True, sender=alice)
    registry.approve(cid, sender=bob)
    root = MerkleTree([content_hash("a")]).root
    with ape.reverts("DatanetRegistry: caller is not the datanet owner"):
        registry.publishVersion(datanet, root, 1, "", sender=alice)
    registry.publishVersion(datanet, root, 1, "", sender=bob)


# ---------------------------------------------------------------- contributions


def test_contribute_with_stake(registry, token, datanet, bob, chain):
    bob_before = token.balanceOf(bob)
    h = content_hash("a")
    tx = registry.contribute(datanet, h, "file://a", 2048, STAKE, sender=bob)
    assert tx.return_value == 1
    assert token.balanceOf(registry) == STAKE
    assert bob_before - token.balanceOf(bob) == STAKE
    assert [
        registry.ContributionSubmitted(
            contributionId=1, datanetId=datanet, contributor=bob, contentHash=h, uri="file://a", size=2048, stake=STAKE
        )
    ] == tx.events.filter(registry.ContributionSubmitted)
    c = registry.getContribution(1)
    assert (c.id, c.datanetId, c.contributor, c.contentHash) == (1, datanet, bob, h)
    assert (c.uri, c.size, c.stake, c.status) == ("file://a", 2048, STAKE, STATUS_PENDING)
    assert c.submittedAt == tx.timestamp
    assert registry.contributionIdOf(datanet, h) == 1
    assert registry.contributionCount() == 1
    assert registry.getDatanet(datanet).contributionCount == 1


def test_contribute_without_stake(registry, token, create_datanet, alice, bob):
    free = create_datanet(alice, 0)
    bob_before = token.balanceOf(bob)
    tx = registry.contribute(free, content_hash("a"), "", 1, 0, sender=bob)
    assert not tx.events.filter(token.Transfer)
    assert token.balanceOf(bob) == bob_before
    assert registry.getContribution(tx.return_value).stake == 0
    # Approving and rejecting a stake-free contribution moves no tokens either.
    tx = registry.approve(tx.return_value, sender=alice)
    assert not tx.events.filter(token.Transfer)
    cid = registry.contribute(free, content_hash("b"), "", 1, 0, sender=bob).return_value
    tx = registry.reject(cid, True, sender=alice)
    assert not tx.events.filter(token.Transfer)
    assert [registry.ContributionRejected(contributionId=cid, stakeSlashed=0, stakeReturned=0)] == tx.events.filter(
        registry.ContributionRejected
    )


def test_contribute_stake_minimum(registry, datanet, bob):
    with ape.reverts("DatanetRegistry: stake below minimum"):
        submit(registry, bob, datanet, "a", MIN_STAKE - 1)
    with ape.reverts("DatanetRegistry: stake below minimum"):
        submit(registry, bob, datanet, "a", 0)
    cid = submit(registry, bob, datanet, "a", MIN_STAKE)
    assert registry.getContribution(cid).stake == MIN_STAKE


def test_contribute_needs_stake_allowance(registry, datanet, accounts, token, governance):
    stranger = accounts[8]
    token.mint(stranger, STAKE, sender=governance)
    with ape.reverts("erc20: insufficient allowance"):
        submit(registry, stranger, datanet, "a")
    assert registry.contributionCount() == 0


def test_contribute_empty_hash(registry, datanet, bob):
    with ape.reverts("DatanetRegistry: empty content hash"):
        registry.contribute(datanet, EMPTY_BYTES32, "", 0, STAKE, sender=bob)


def test_contribute_unknown_datanet(registry, datanet, bob):
    for bad in (0, datanet + 1, MAX_UINT256):
        with ape.reverts("DatanetRegistry: unknown datanet"):
            submit(registry, bob, bad, "a")


def test_duplicate_rejected_while_pending(registry, datanet, bob, carol):
    submit(registry, bob, datanet, "a")
    with ape.reverts("DatanetRegistry: duplicate content"):
        submit(registry, bob, datanet, "a")
    with ape.reverts("DatanetRegistry: duplicate content"):
        submit(registry, carol, datanet, "a")


def test_duplicate_rejected_while_approved(registry, datanet, alice, bob, carol):
    cid = submit(registry, bob, datanet, "a")
    registry.approve(cid, sender=alice)
    with ape.reverts("DatanetRegistry: duplicate content"):
        submit(registry, carol, datanet, "a")
    assert registry.contributionIdOf(datanet, content_hash("a")) == cid


def test_same_content_in_another_datanet(registry, datanet, create_datanet, alice, bob, carol):
    other = create_datanet(carol, 0)
    cid1 = submit(registry, bob, datanet, "a")
    cid2 = submit(registry, bob, other, "a")
    assert registry.contributionIdOf(datanet, content_hash("a")) == cid1
    assert registry.contributionIdOf(other, content_hash("a")) == cid2


def test_duplicate_allowed_after_withdraw(registry, datanet, bob, carol):
    cid = submit(registry, bob, datanet, "a")
    registry.withdraw(cid, sender=bob)
    assert registry.contributionIdOf(datanet, content_hash("a")) == 0
    again = submit(registry, carol, datanet, "a")
    assert again == cid + 1
    assert registry.contributionIdOf(datanet, content_hash("a")) == again


def test_duplicate_allowed_after_ordinary_reject(registry, datanet, alice, bob):
    cid = submit(registry, bob, datanet, "a")
    registry.reject(cid, False, sender=alice)
    assert registry.contributionIdOf(datanet, content_hash("a")) == 0
    again = submit(registry, bob, datanet, "a")
    registry.approve(again, sender=alice)
    assert registry.getContribution(again).status == STATUS_APPROVED
    assert registry.getContribution(cid).status == STATUS_REJECTED


def test_duplicate_blocked_after_malicious_reject(registry, datanet, alice, bob, carol):
    cid = submit(registry, bob, datanet, "a")
    registry.reject(cid, True, sender=alice)
    assert registry.contributionIdOf(datanet, content_hash("a")) == cid
    with ape.reverts("DatanetRegistry: duplicate content"):
        submit(registry, bob, datanet, "a")
    with ape.reverts("DatanetRegistry: duplicate content"):
        submit(registry, carol, datanet, "a")


# ---------------------------------------------------------------- curation


@pytest.mark.parametrize("by_curator", [False, True], ids=["owner", "curator"])
def test_approve_returns_stake(registry, token, curated, alice, bob, carol, by_curator):
    curator = bob if by_curator else alice
    cid = submit(registry, carol, curated, "a")
    carol_before = token.balanceOf(carol)
    tx = registry.approve(cid, sender=curator)
    assert token.balanceOf(carol) - carol_before == STAKE
    assert token.balanceOf(registry) == 0
    assert [
        registry.ContributionApproved(
            contributionId=cid, datanetId=curated, curator=curator, approvalIndex=0, stakeReturned=STAKE
        )
    ] == tx.events.filter(registry.ContributionApproved)
    c = registry.getContribution(cid)
    assert (c.status, c.stake) == (STATUS_APPROVED, 0)
    assert registry.getDatanet(curated).approvedCount == 1
    cid2 = submit(registry, carol, curated, "b")
    tx = registry.approve(cid2, sender=curator)
    assert [registry.ContributionApproved(contributionId=cid2, approvalIndex=1)] == tx.events.filter(
        registry.ContributionApproved
    )


@pytest.mark.parametrize("by_curator", [False, True], ids=["owner", "curator"])
def test_ordinary_reject_returns_stake(registry, token, treasury, curated, alice, bob, carol, by_curator):
    curator = bob if by_curator else alice
    cid = submit(registry, carol, curated, "a")
    carol_before = token.balanceOf(carol)
    treasury_before = token.balanceOf(treasury)
    tx = registry.reject(cid, False, sender=curator)
    assert token.balanceOf(carol) - carol_before == STAKE
    assert token.balanceOf(treasury) == treasury_before
    assert token.balanceOf(registry) == 0
    assert [
        registry.ContributionRejected(
            contributionId=cid, datanetId=curated, curator=curator, malicious=False, stakeReturned=STAKE, stakeSlashed=0
        )
    ] == tx.events.filter(registry.ContributionRejected)
    c = registry.getContribution(cid)
    assert (c.status, c.stake) == (STATUS_REJECTED, 0)
    assert registry.getDatanet(curated).approvedCount == 0


@pytest.mark.parametrize("by_curator", [False, True], ids=["owner", "curator"])
def test_malicious_reject_slashes_stake(registry, token, treasury, curated, alice, bob, carol, by_curator):
    curator = bob if by_curator else alice
    cid = submit(registry, carol, curated, "a")
    carol_before = token.balanceOf(carol)
    treasury_before = token.balanceOf(treasury)
    tx = registry.reject(cid, True, sender=curator)
    assert token.balanceOf(carol) == carol_before
    assert token.balanceOf(treasury) - treasury_before == STAKE
    assert token.balanceOf(registry) == 0
    assert [
        registry.ContributionRejected(
            contributionId=cid, datanetId=curated, curator=curator, malicious=True, stakeReturned=0, stakeSlashed=STAKE
        )
    ] == tx.events.filter(registry.ContributionRejected)
    c = registry.getContribution(cid)
    assert (c.status, c.stake) == (STATUS_SLASHED, 0)


def test_non_curator_cannot_curate(registry, curated, create_datanet, governance, alice, bob, carol, dave):
    cid = submit(registry, carol, curated, "a")
    for outsider in (carol, dave):  # the contributor herself, and a stranger
        with ape.reverts("DatanetRegistry: caller is not a curator"):
            registry.approve(cid, sender=outsider)
        with ape.reverts("DatanetRegistry: caller is not a curator"):
            registry.reject(cid, False, sender=outsider)
        with ape.reverts("DatanetRegistry: caller is not a curator"):
            registry.reject(cid, True, sender=outsider)
    # A curator of another Datanet has no power here.
    other = create_datanet(dave, 0)
    registry.setCurator(other, carol, True, sender=dave)
    with ape.reverts("DatanetRegistry: caller is not a curator"):
        registry.approve(cid, sender=carol)
    # Governance has no curation power either.
    with ape.reverts("DatanetRegistry: caller is not a curator"):
        registry.approve(cid, sender=governance)
    # A removed curator loses the power.
    registry.setCurator(curated, bob, False, sender=alice)
    with ape.reverts("DatanetRegistry: caller is not a curator"):
        registry.approve(cid, sender=bob)
    assert registry.getContribution(cid).status == STATUS_PENDING


def test_curation_needs_pending(registry, datanet, alice, bob):
    approved = submit(registry, bob, datanet, "a")
    registry.approve(approved, sender=alice)
    rejected = submit(registry, bob, datanet, "b")
    registry.reject(rejected, False, sender=alice)
    slashed = submit(registry, bob, datanet, "c")
    registry.reject(slashed, True, sender=alice)
    withdrawn = submit(registry, bob, datanet, "d")
    registry.withdraw(withdrawn, sender=bob)
    for cid in (approved, rejected, slashed, withdrawn):
        with ape.reverts("DatanetRegistry: contribution is not pending"):
            registry.approve(cid, sender=alice)
        with ape.reverts("DatanetRegistry: contribution is not pending"):
            registry.reject(cid, False, sender=alice)
        with ape.reverts("DatanetRegistry: contribution is not pending"):
            registry.reject(cid, True, sender=alice)
        with ape.reverts("DatanetRegistry: contribution is not pending"):
            registry.withdraw(cid, sender=bob)


def test_unknown_contribution(registry, datanet, alice, bob):
    cid = submit(registry, bob, datanet, "a")
    for bad in (0, cid + 1):
        with ape.reverts("DatanetRegistry: unknown contribution"):
            registry.approve(bad, sender=alice)
        with ape.reverts("DatanetRegistry: unknown contribution"):
            registry.reject(bad, True, sender=alice)
        with ape.reverts("DatanetRegistry: unknown contribution"):
            registry.withdraw(bad, sender=bob)
        with ape.reverts("DatanetRegistry: unknown contribution"):
            registry.getContribution(bad)


# ---------------------------------------------------------------- withdraw


def test_withdraw(registry, token, datanet, bob):
    cid = submit(registry, bob, datanet, "a")
    bob_before = token.balanceOf(bob)
    tx = registry.withdraw(cid, sender=bob)
    assert token.balanceOf(bob) - bob_before == STAKE
    assert token.balanceOf(registry) == 0
    assert [
        registry.ContributionWithdrawn(contributionId=cid, datanetId=datanet, contributor=bob, stakeReturned=STAKE)
    ] == tx.events.filter(registry.ContributionWithdrawn)
    c = registry.getContribution(cid)
    assert (c.status, c.stake) == (STATUS_WITHDRAWN, 0)


def test_withdraw_only_by_contributor(registry, curated, alice, bob, carol):
    cid = submit(registry, carol, curated, "a")
    for other in (alice, bob):  # neither the Datanet owner nor its curator
        with ape.reverts("DatanetRegistry: not the contributor"):
            registry.withdraw(cid, sender=other)
    assert registry.getContribution(cid).status == STATUS_PENDING


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


# ---------------------------------------------------------------- stateful: the registry against a Python model

POOL = [content_hash(f"pool-{i}") for i in range(10)]  # a small pool, so duplicates come up
STAKES = [0, 50, 100, ONE]
SECOND_MIN_STAKE = 100
MAX_DATANETS = 4
N_USERS = 6

# Choices are drawn as roles and references that the machine resolves against its model, so most calls are
# meaningful (a pending contribution, its Datanet's owner) while every kind of bad call still comes up.
ANYONE = st.integers(0, N_USERS - 1)
REF = st.integers(0, 10**6)
DATANET_KIND = st.sampled_from(["known"] * 7 + ["unknown"])
CURATE_ROLE = st.sampled_from(["owner", "curator"] * 3 + ["anyone"])
WITHDRAW_ROLE = st.sampled_from(["contributor"] * 4 + ["anyone"])
CONTRIBUTION_PICK = st.sampled_from(["pending"] * 6 + ["any", "unknown"])
DECISION = st.sampled_from(["approve"] * 3 + ["reject", "slash"])
STAKE_KIND = st.sampled_from(["min", "above"] * 2 + ["zero", "large", "below"])
PUBLISH_MODE = st.sampled_from(["ready"] * 5 + ["stale", "over", "under", "empty root", "anyone", "unknown"])
CONFIGURE = st.sampled_from(["curator on", "curator off", "min stake", "not owner", "unknown"])


@dataclass
class ModelContribution:
    id: int
    datanet: int
    contributor: int
    content_hash: bytes
    stake: int
    status: int = STATUS_PENDING


@dataclass
class ModelVersion:
    root: bytes
    count: int
    manifest: str
    published_at: int


@dataclass
class ModelDatanet:
    owner: int
    min_stake: int
    curators: set[int] = field(default_factory=set)
    contributions: list[int] = field(default_factory=list)  # ids in submission order
    approved: list[bytes] = field(default_factory=list)  # content hashes in approval order
    versions: list[ModelVersion] = field(default_factory=list)
    holder: dict[bytes, int] = field(default_factory=dict)  # hash -> id while pending / approved / slashed


class DatanetRegistryMachine(RuleBasedStateMachine):
    """Random calls by random accounts; every call must succeed or revert exactly as the model says."""

    def __init__(self, env: SimpleNamespace):
        super().__init__()
        self.chain, self.registry, self.token = env.chain, env.registry, env.token
        self.users, self.treasury = env.users, env.treasury
        self.snapshot_id = self.chain.snapshot()
        self.treasury_balance = self.token.balanceOf(self.treasury)
        self.fee = self.registry.creationFee()
        self.datanets: dict[int, ModelDatanet] = {}
        for owner, min_stake, curator in env.initial_datanets:
            self.datanets[len(self.datanets) + 1] = ModelDatanet(owner, min_stake, {curator})
        self.contributions: dict[int, ModelContribution] = {}

    def teardown(self):
        self.chain.restore(self.snapshot_id)

    # ------------------------------------------------------------ resolving choices

    def _datanet(self, kind: str, ref: int) -> int:
        if kind == "unknown":
            return 0 if ref % 2 else len(self.datanets) + 1
        return 1 + ref % len(self.datanets)

    def _contribution(self, pick: str, ref: int) -> int:
        candidates = list(self.contributions)
        if pick == "pending":
            candidates = [cid for cid in candidates if self.contributions[cid].status == STATUS_PENDING]
        if pick == "unknown" or not candidates:
            return 0 if ref % 2 else len(self.contributions) + 1
        return candidates[ref % len(candidates)]

    def _account(self, role: str, d: int, ref: int, contributor: int | None = None) -> int:
        model = self.datanets.get(d)
        if role == "owner" and model:
            return model.owner
        if role == "curator" and model and model.curators:
            curators = sorted(model.curators)
            return curators[ref % len(curators)]
        if role == "contributor" and contributor is not None:
            return contributor
        return (ref // 7) % N_USERS

    def _publishable(self) -> list[int]:
        return [
            d
            for d, model in self.datanets.items()
            if model.approved and (not model.versions or model.versions[-1].count < len(model.approved))
        ]

    def _has_pending(self) -> bool:
        return any(c.status == STATUS_PENDING for c in self.contributions.values())

    # ------------------------------------------------------------ expected reverts

    def _pending_error(self, cid: int) -> str | None:
        if cid not in self.contributions:
            return "DatanetRegistry: unknown contribution"
        if self.contributions[cid].status != STATUS_PENDING:
            return "DatanetRegistry: contribution is not pending"
        return None

    def _owner_error(self, who: int, d: int) -> str | None:
        if d not in self.datanets:
            return "DatanetRegistry: unknown datanet"
        if self.datanets[d].owner != who:
            return "DatanetRegistry: caller is not the datanet owner"
        return None

    def _curate_error(self, who: int, cid: int) -> str | None:
        if err := self._pending_error(cid):
            return err
        d = self.datanets[self.contributions[cid].datanet]
        if who != d.owner and who not in d.curators:
            return "DatanetRegistry: caller is not a curator"
        return None

    def _check_holder(self, d: int, h: bytes):
        assert self.registry.contributionIdOf(d, h) == self.datanets[d].holder.get(h, 0)

    # ------------------------------------------------------------ rules

    @initialize(
        seeds=st.lists(
            st.tuples(ANYONE, st.integers(1, 2), st.integers(0, len(POOL) - 1), st.booleans()),
            min_size=2,
            max_size=8,
            unique_by=lambda seed: seed[1:3],
        ),
        publish_first=st.booleans(),
    )
    def seed(self, seeds, publish_first):
        """Start every run with valid contributions in the two initial Datanets, some approved (and published)."""
        for who, d, item, approve in seeds:
            model = self.datanets[d]
            stake = model.min_stake + 10
            self.registry.contribute(d, POOL[item], "file://seed", 1, stake, sender=self.users[who])
            cid = len(self.contributions) + 1
            self.contributions[cid] = ModelContribution(cid, d, who, POOL[item], stake)
            model.contributions.append(cid)
            model.holder[POOL[item]] = cid
            if approve:
                self.registry.approve(cid, sender=self.users[model.owner])
                model.approved.append(POOL[item])
                self.contributions[cid].status, self.contributions[cid].stake = STATUS_APPROVED, 0
        for d in self._publishable() if publish_first else []:
            model = self.datanets[d]
            root, count = MerkleTree(model.approved).root, len(model.approved)
            tx = self.registry.publishVersion(d, root, count, "ipfs://seed", sender=self.users[model.owner])
            model.versions.append(ModelVersion(root, count, "ipfs://seed", tx.timestamp))

    @precondition(lambda self: len(self.datanets) < MAX_DATANETS)
    @rule(who=ANYONE, min_stake=st.sampled_from(STAKES))
    def create_datanet(self, who, min_stake):
        tx = self.registry.createDatanet(f"datanet-{len(self.datanets) + 1}", "", min_stake, sender=self.users[who])
        assert tx.return_value == len(self.datanets) + 1
        self.datanets[tx.return_value] = ModelDatanet(who, min_stake)
        self.treasury_balance += self.fee

    @rule(what=CONFIGURE, ref=REF, account=ANYONE, min_stake=st.sampled_from(STAKES))
    def configure(self, what, ref, account, min_stake):
        """Appoint or remove a curator, or change the minimum stake (by the owner, or by someone else)."""
        d = self._datanet("unknown" if what == "unknown" else "known", ref)
        who = self._account("anyone" if what == "not owner" else "owner", d, ref)
        sender = self.users[who]
        if what in ("curator on", "curator off"):
            call = partial(self.registry.setCurator, d, self.users[account], what == "curator on", sender=sender)
        else:
            call = partial(self.registry.setMinStake, d, min_stake, sender=sender)
        if err := self._owner_error(who, d):
            with ape.reverts(err):
                call()
            return
        call()
        model = self.datanets[d]
        if what == "curator on":
            model.curators.add(account)
        elif what == "curator off":
            model.curators.discard(account)
        else:
            model.min_stake = min_stake
        assert self.registry.isCurator(d, self.users[account]) == (account in model.curators)

    @rule(who=ANYONE, kind=DATANET_KIND, ref=REF, item=st.integers(0, len(POOL) - 1), stake_kind=STAKE_KIND)
    def contribute(self, who, kind, ref, item, stake_kind):
        d = self._datanet(kind, ref)
        h, sender = POOL[item], self.users[who]
        model = self.datanets.get(d)
        minimum = model.min_stake if model else 0
        stake = {"min": minimum, "above": minimum + 50, "zero": 0, "large": ONE, "below": max(0, minimum - 1)}[
            stake_kind
        ]
        err = None
        if model is None:
            err = "DatanetRegistry: unknown datanet"
        elif stake < minimum:
            err = "DatanetRegistry: stake below minimum"
        elif h in model.holder:
            err = "DatanetRegistry: duplicate content"
        if err:
            with ape.reverts(err):
                self.registry.contribute(d, h, "file://blob", 1, stake, sender=sender)
            return
        tx = self.registry.contribute(d, h, "file://blob", 1, stake, sender=sender)
        cid = len(self.contributions) + 1
        assert tx.return_value == cid
        self.contributions[cid] = ModelContribution(cid, d, who, h, stake)
        model.contributions.append(cid)
        model.holder[h] = cid
        self._check_holder(d, h)

    @precondition(lambda self: self._has_pending())
    @rule(role=CURATE_ROLE, pick=CONTRIBUTION_PICK, ref=REF, decision=DECISION)
    def curate(self, role, pick, ref, decision):
        """Approve, reject or slash a contribution (usually a pending one, by its owner or a curator)."""
        cid = self._contribution(pick, ref)
        who = self._account(role, self.contributions[cid].datanet if cid in self.contributions else 0, ref)
        sender = self.users[who]
        if decision == "approve":
            call = partial(self.registry.approve, cid, sender=sender)
        else:
            call = partial(self.registry.reject, cid, decision == "slash", sender=sender)
        if err := self._curate_error(who, cid):
            with ape.reverts(err):
                call()
            return
        c = self.contributions[cid]
        model = self.datanets[c.datanet]
        contributor = self.users[c.contributor]
        contributor_before = self.token.balanceOf(contributor)
        tx = call()
        if decision == "approve":
            assert [
                self.registry.ContributionApproved(
                    contributionId=cid, curator=sender, approvalIndex=len(model.approved), stakeReturned=c.stake
                )
            ] == tx.events.filter(self.registry.ContributionApproved)
            model.approved.append(c.content_hash)
            c.status = STATUS_APPROVED
        elif decision == "reject":
            c.status = STATUS_REJECTED
            del model.holder[c.content_hash]
        else:
            assert [
                self.registry.ContributionRejected(contributionId=cid, malicious=True, stakeSlashed=c.stake)
            ] == tx.events.filter(self.registry.ContributionRejected)
            self.treasury_balance += c.stake
            c.status = STATUS_SLASHED
        returned = 0 if decision == "slash" else c.stake
        assert self.token.balanceOf(contributor) - contributor_before == returned
        c.stake = 0
        self._check_holder(c.datanet, c.content_hash)

    @precondition(lambda self: self._has_pending())
    @rule(role=WITHDRAW_ROLE, pick=CONTRIBUTION_PICK, ref=REF)
    def withdraw(self, role, pick, ref):
        cid = self._contribution(pick, ref)
        contributor = self.contributions[cid].contributor if cid in self.contributions else None
        who = self._account(role, 0, ref, contributor)
        err = self._pending_error(cid)
        if err is None and contributor != who:
            err = "DatanetRegistry: not the contributor"
        if err:
            with ape.reverts(err):
                self.registry.withdraw(cid, sender=self.users[who])
            return
        c = self.contributions[cid]
        before = self.token.balanceOf(self.users[who])
        self.registry.withdraw(cid, sender=self.users[who])
        assert self.token.balanceOf(self.users[who]) - before == c.stake
        c.status, c.stake = STATUS_WITHDRAWN, 0
        del self.datanets[c.datanet].holder[c.content_hash]
        self._check_holder(c.datanet, c.content_hash)

    @rule(mode=PUBLISH_MODE, ref=REF)
    def publish(self, mode, ref):
        """Publish a version: usually the right count and root by the owner, sometimes every kind of wrong call."""
        ready = self._publishable() or [d for d, model in self.datanets.items() if model.versions]
        if mode == "ready" and ready:
            d = ready[ref % len(ready)]  # something new to publish, else a Datanet with nothing new
        else:
            d = self._datanet("unknown" if mode == "unknown" else "known", ref)
        who = self._account("anyone" if mode == "anyone" else "owner", d, ref)
        model = self.datanets.get(d)
        approved = model.approved if model else []
        count = len(approved) + {"over": 1, "under": -1}.get(mode, 0)
        if mode == "stale" and model and model.versions:
            count = model.versions[-1].count
        count = max(count, 0)
        if mode == "empty root":
            root = EMPTY_BYTES32
        elif 0 < count <= len(approved):
            root = MerkleTree(approved[:count]).root
        else:
            root = content_hash("not a real root")
        manifest = f"ipfs://{d}/{count}"
        err = self._owner_error(who, d)
        if err is None:
            if root == EMPTY_BYTES32:
                err = "DatanetRegistry: empty root"
            elif count != len(approved):
                err = "DatanetRegistry: count is not the approved count"
            elif model.versions and count <= model.versions[-1].count:
                err = "DatanetRegistry: nothing new to publish"
            elif count == 0:
                err = "DatanetRegistry: nothing approved"
        if err:
            with ape.reverts(err):
                self.registry.publishVersion(d, root, count, manifest, sender=self.users[who])
            return
        tx = self.registry.publishVersion(d, root, count, manifest, sender=self.users[who])
        assert tx.return_value == len(model.versions) + 1
        assert [
            self.registry.VersionPublished(datanetId=d, version=tx.return_value, merkleRoot=root, count=count)
        ] == tx.events.filter(self.registry.VersionPublished)
        model.versions.append(ModelVersion(root, count, manifest, tx.timestamp))

    @precondition(lambda self: any(model.versions for model in self.datanets.values()))
    @rule(ref=REF)
    def verify_proof(self, ref):
        """A Python proof of a version's leaf verifies on-chain; the same proof for another hash or version does not."""
        published = [d for d, model in self.datanets.items() if model.versions]
        d = published[ref % len(published)]
        model = self.datanets[d]
        v = 1 + ref % len(model.versions)
        leaves = model.approved[: model.versions[v - 1].count]
        tree = MerkleTree(leaves)
        i = ref % len(leaves)
        proof = tree.proof(i)
        assert self.registry.verifyContribution(d, v, leaves[i], proof)
        assert not self.registry.verifyContribution(d, len(model.versions) + 1, leaves[i], proof)
        outsiders = [h for h in POOL if h not in leaves]
        if outsiders:
            assert not self.registry.verifyContribution(d, v, outsiders[ref % len(outsiders)], proof)

    # ------------------------------------------------------------ invariants

    @invariant()
    def chain_matches_model(self):
        registry = self.registry
        pending = [c for c in self.contributions.values() if c.status == STATUS_PENDING]
        # The registry holds exactly the pending stakes; fees and slashes went to the treasury.
        assert self.token.balanceOf(registry) == sum(c.stake for c in pending)
        assert self.token.balanceOf(self.treasury) == self.treasury_balance

        onchain = registry.getDatanets(0, MAX_PAGE)
        assert len(onchain) == len(self.datanets)
        for d, record in enumerate(onchain, start=1):
            model = self.datanets[d]
            assert record.owner == self.users[model.owner].address
            assert record.minStake == model.min_stake
            assert record.contributionCount == len(model.contributions)
            assert record.approvedCount == len(model.approved)
            assert record.versionCount == len(model.versions)
            if not model.contributions:
                continue

            page = registry.getContributions(d, 0, MAX_PAGE)
            assert [(c.id, c.contributor, c.contentHash, c.stake, c.status) for c in page] == [
                (
                    cid,
                    self.users[self.contributions[cid].contributor].address,
                    self.contributions[cid].content_hash,
                    self.contributions[cid].stake,
                    self.contributions[cid].status,
                )
                for cid in model.contributions
            ]
            # No content hash is pending or approved twice in one Datanet.
            live = [c.contentHash for c in page if c.status in (STATUS_PENDING, STATUS_APPROVED)]
            assert len(live) == len(set(live))
            if not model.approved:
                continue

            # Only approved contributions are leaves, in approval order.
            approved = list(registry.getApprovedHashes(d, 0, MAX_PAGE))
            assert approved == model.approved
            assert set(approved) == {c.contentHash for c in page if c.status == STATUS_APPROVED}

            # Published versions never change and commit to the approved hashes in approval order.
            for v, expected in enumerate(model.versions, start=1):
                version = registry.getVersion(d, v)
                assert (version.merkleRoot, version.count, version.manifestURI, version.publishedAt) == (
                    expected.root,
                    expected.count,
                    expected.manifest,
                    expected.published_at,
                )
                assert version.merkleRoot == MerkleTree(approved[: version.count]).root


def test_datanet_registry_stateful(chain, datanet_registry, token, funded, create_datanet, treasury):
    users = funded
    initial = [(0, 0, 2), (1, SECOND_MIN_STAKE, 3)]  # (owner, min stake, curator) as indices into users
    for owner, min_stake, curator in initial:
        datanet_id = create_datanet(users[owner], min_stake)
        datanet_registry.setCurator(datanet_id, users[curator], True, sender=users[owner])
    env = SimpleNamespace(
        chain=chain,
        registry=datanet_registry,
        token=token,
        users=users,
        treasury=treasury,
        initial_datanets=initial,
    )
    run_state_machine_as_test(
        lambda: DatanetRegistryMachine(env),
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
