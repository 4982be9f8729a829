"""DatanetRegistry: deployment, governance, creating Datanets, curators, minimum stakes and ownership."""

from __future__ import annotations

import ape
from contract_helpers import (
    CREATION_FEE,
    ONE,
    ZERO_ADDRESS,
    content_hash,
)
from datanet_registry_helpers import MIN_STAKE, STAKE, submit

from attribution_oracle.store.merkle import MerkleTree

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
