"""DatanetRegistry: contributing with stakes, the duplicate rule, and withdrawing a pending contribution."""

from __future__ import annotations

import ape
from contract_helpers import (
    EMPTY_BYTES32,
    MAX_UINT256,
    STATUS_APPROVED,
    STATUS_PENDING,
    STATUS_REJECTED,
    STATUS_WITHDRAWN,
    content_hash,
)
from datanet_registry_helpers import MIN_STAKE, STAKE, submit

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
