"""DatanetRegistry front-running (issue 13, attack 15): a contribution bound to its contributor by commit-reveal.

A plain ``contribute`` exposes the content hash in the mempool; a contributor who commits first (the commitment
reveals nothing) and reveals in a later block is credited even if someone copied the hash in between, and a
slashed squatter blocks the hash only for itself.
"""

from __future__ import annotations

import os

import ape
import pytest
from contract_helpers import ONE, STATUS_PENDING, STATUS_REJECTED, STATUS_SLASHED, content_hash

from attribution_oracle.chain.commit_reveal import contribution_commitment

MIN_STAKE = ONE
STAKE = 2 * ONE
ALICE_DATA = content_hash("alice's clinical notes")


@pytest.fixture
def registry(datanet_registry, funded):
    return datanet_registry


@pytest.fixture
def datanet(create_datanet, carol):
    """Datanet 1, owned by Carol, min stake 1 OPEN."""
    return create_datanet(carol, MIN_STAKE)


def commit(registry, who, datanet_id, content, salt=None):
    salt = salt or os.urandom(32)
    commitment = contribution_commitment(datanet_id, content, who.address, salt)
    registry.commitContribution(commitment, sender=who)
    return salt


def status(registry, cid):
    c = registry.getContribution(cid)
    return c.status, c.contributor, c.stake


def test_attack_mempool_copy_of_a_contribution_front_runs_the_contributor(registry, token, datanet, alice, bob):
    """Bob copies Alice's hash between her commit and her reveal: Alice is credited, Bob's copy is displaced."""
    salt = commit(registry, alice, datanet, ALICE_DATA)
    copy = registry.contribute(datanet, ALICE_DATA, "ipfs://copied", 10, STAKE, sender=bob).return_value
    bob_before = token.balanceOf(bob)
    tx = registry.revealContribution(datanet, ALICE_DATA, "ipfs://alice", 10, STAKE, salt, sender=alice)
    mine = tx.return_value
    assert status(registry, copy) == (STATUS_REJECTED, bob.address, 0)
    assert token.balanceOf(bob) - bob_before == STAKE  # an ordinary rejection: the copier's stake comes back
    assert status(registry, mine) == (STATUS_PENDING, alice.address, STAKE)
    assert registry.contributionIdOf(datanet, ALICE_DATA) == mine
    [displaced] = tx.decode_logs(registry.ContributionDisplaced)
    assert (displaced.contributionId, displaced.byContributor) == (copy, alice.address)


def test_attack_copied_reveal_from_another_sender_is_refused(registry, datanet, alice, bob):
    """The commitment names its contributor: replaying Alice's reveal (salt and all) from Bob's account fails."""
    salt = commit(registry, alice, datanet, ALICE_DATA)
    with ape.reverts("DatanetRegistry: no such commitment"):
        registry.revealContribution(datanet, ALICE_DATA, "ipfs://x", 10, STAKE, salt, sender=bob)
    registry.revealContribution(datanet, ALICE_DATA, "ipfs://alice", 10, STAKE, salt, sender=alice)


def test_attack_commit_and_reveal_in_one_block_after_seeing_the_reveal_is_refused(registry, datanet, alice, bob):
    """A front-runner who only learns the hash from a pending reveal cannot hold an older commitment."""
    salt = commit(registry, alice, datanet, ALICE_DATA)
    registry.revealContribution(datanet, ALICE_DATA, "ipfs://alice", 10, STAKE, salt, sender=alice)
    late = commit(registry, bob, datanet, ALICE_DATA)
    with ape.reverts("DatanetRegistry: duplicate content"):
        registry.revealContribution(datanet, ALICE_DATA, "ipfs://copy", 10, STAKE, late, sender=bob)


def test_reveal_in_the_block_of_the_commitment_is_refused(registry, datanet, alice, chain):
    commitment = contribution_commitment(datanet, ALICE_DATA, alice.address, b"\x01" * 32)
    assert registry.contributionCommitment(datanet, ALICE_DATA, alice.address, b"\x01" * 32) == commitment
    with ape.reverts("DatanetRegistry: no such commitment"):
        registry.revealContribution(datanet, ALICE_DATA, "u", 1, STAKE, b"\x01" * 32, sender=alice)
    registry.commitContribution(commitment, sender=alice)
    assert registry.commitmentBlock(alice, commitment) == chain.blocks.head.number


def test_commitment_is_one_shot(registry, datanet, alice):
    salt = commit(registry, alice, datanet, ALICE_DATA)
    cid = registry.revealContribution(datanet, ALICE_DATA, "u", 1, STAKE, salt, sender=alice).return_value
    registry.withdraw(cid, sender=alice)
    with ape.reverts("DatanetRegistry: no such commitment"):
        registry.revealContribution(datanet, ALICE_DATA, "u", 1, STAKE, salt, sender=alice)


def test_attack_slashed_squatter_blocks_a_content_hash_forever(registry, datanet, alice, bob, carol):
    """Bob squats Alice's hash and is slashed: the hash stays closed to Bob, but Alice's reveal is accepted."""
    squat = registry.contribute(datanet, ALICE_DATA, "ipfs://squat", 10, STAKE, sender=bob).return_value
    registry.reject(squat, True, sender=carol)
    assert status(registry, squat)[0] == STATUS_SLASHED
    with ape.reverts("DatanetRegistry: duplicate content"):  # the plain path keeps the block
        registry.contribute(datanet, ALICE_DATA, "ipfs://alice", 10, STAKE, sender=alice)
    again = commit(registry, bob, datanet, ALICE_DATA)
    with ape.reverts("DatanetRegistry: duplicate content"):  # and the squatter stays blocked
        registry.revealContribution(datanet, ALICE_DATA, "ipfs://squat", 10, STAKE, again, sender=bob)
    salt = commit(registry, alice, datanet, ALICE_DATA)
    cid = registry.revealContribution(datanet, ALICE_DATA, "ipfs://alice", 10, STAKE, salt, sender=alice).return_value
    registry.approve(cid, sender=carol)
    assert registry.getApprovedHashes(datanet, 0, 10) == [ALICE_DATA]


def test_an_earlier_commitment_keeps_its_hash_against_a_later_one(registry, datanet, alice, bob):
    first = commit(registry, alice, datanet, ALICE_DATA)
    second = commit(registry, bob, datanet, ALICE_DATA)
    registry.revealContribution(datanet, ALICE_DATA, "ipfs://alice", 10, STAKE, first, sender=alice)
    with ape.reverts("DatanetRegistry: duplicate content"):
        registry.revealContribution(datanet, ALICE_DATA, "ipfs://bob", 10, STAKE, second, sender=bob)


def test_an_approved_contribution_is_never_displaced(registry, datanet, alice, bob, carol):
    salt = commit(registry, alice, datanet, ALICE_DATA)
    cid = registry.contribute(datanet, ALICE_DATA, "ipfs://bob", 10, STAKE, sender=bob).return_value
    registry.approve(cid, sender=carol)
    with ape.reverts("DatanetRegistry: duplicate content"):
        registry.revealContribution(datanet, ALICE_DATA, "ipfs://alice", 10, STAKE, salt, sender=alice)
