"""DatanetRegistry: approving, rejecting and slashing; who may curate."""

from __future__ import annotations

import ape
import pytest
from contract_helpers import (
    STATUS_APPROVED,
    STATUS_PENDING,
    STATUS_REJECTED,
    STATUS_SLASHED,
)
from datanet_registry_helpers import STAKE, submit

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
