"""OpenToken: capped minting, minter roles, ERC-20 surface, ownership and EIP-2612 permit."""

from __future__ import annotations

import ape
import pytest
from contract_helpers import CAP, MAX_UINT256, ONE, ZERO_ADDRESS
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

PERMIT_TYPES = {
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}


def sign_permit(
    token,
    signer,
    owner,
    spender,
    value: int,
    nonce: int,
    deadline: int,
    chain_id: int,
    verifying_contract=None,
):
    """Sign an EIP-2612 permit with ``signer``'s key for the OPEN domain on ``chain_id``."""
    domain = {
        "name": "OPEN",
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": str(verifying_contract or token.address),
    }
    message = {
        "owner": str(owner),
        "spender": str(spender),
        "value": value,
        "nonce": nonce,
        "deadline": deadline,
    }
    signed = Account.sign_typed_data(signer.private_key, domain, PERMIT_TYPES, message)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


@pytest.fixture
def far_deadline(chain):
    return chain.pending_timestamp + 3600


# ---------------------------------------------------------------- deployment


def test_deployment(token, governance):
    assert token.name() == "OPEN"
    assert token.symbol() == "OPEN"
    assert token.decimals() == 18
    assert token.cap() == CAP
    assert token.totalSupply() == 0
    assert token.owner() == governance
    assert token.is_minter(governance)


def test_zero_cap_rejected(project, governance):
    with ape.reverts("OpenToken: zero cap"):
        project.OpenToken.deploy(0, sender=governance)


def test_eip712_domain(token, chain):
    fields, name, version, chain_id, verifying_contract, salt, extensions = token.eip712Domain()
    assert fields == b"\x0f"
    assert (name, version, chain_id, verifying_contract) == ("OPEN", "1", chain.chain_id, token.address)
    assert salt == b"\x00" * 32
    assert list(extensions) == []
    type_hash = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [type_hash, keccak(b"OPEN"), keccak(b"1"), chain.chain_id, token.address],
        )
    )
    assert token.DOMAIN_SEPARATOR() == expected


# ---------------------------------------------------------------- minting and the cap


def test_mint_by_governance(token, governance, alice):
    tx = token.mint(alice, 5 * ONE, sender=governance)
    assert token.balanceOf(alice) == 5 * ONE
    assert token.totalSupply() == 5 * ONE
    assert [token.Transfer(sender=ZERO_ADDRESS, receiver=alice, value=5 * ONE)] == tx.events.filter(token.Transfer)


def test_mint_up_to_cap_exactly(token, governance, alice):
    token.mint(alice, CAP, sender=governance)
    assert token.totalSupply() == CAP
    with ape.reverts("OpenToken: cap exceeded"):
        token.mint(alice, 1, sender=governance)


def test_mint_above_cap_reverts(token, governance, alice):
    token.mint(alice, CAP - 10, sender=governance)
    with ape.reverts("OpenToken: cap exceeded"):
        token.mint(alice, 11, sender=governance)
    with ape.reverts("OpenToken: cap exceeded"):
        token.mint(alice, CAP + 1, sender=governance)
    token.mint(alice, 10, sender=governance)
    assert token.totalSupply() == CAP


def test_burn_frees_room_under_cap(token, governance, alice):
    token.mint(alice, CAP, sender=governance)
    token.burn(3 * ONE, sender=alice)
    assert token.totalSupply() == CAP - 3 * ONE
    with ape.reverts("OpenToken: cap exceeded"):
        token.mint(alice, 3 * ONE + 1, sender=governance)
    token.mint(alice, 3 * ONE, sender=governance)
    assert token.totalSupply() == CAP


def test_burn_from_frees_room_under_cap(token, governance, alice, bob):
    token.mint(alice, CAP, sender=governance)
    token.approve(bob, ONE, sender=alice)
    token.burn_from(alice, ONE, sender=bob)
    assert token.totalSupply() == CAP - ONE
    token.mint(bob, ONE, sender=governance)
    assert token.totalSupply() == CAP


def test_only_minters_mint(token, alice, bob):
    with ape.reverts("OpenToken: caller is not a minter"):
        token.mint(alice, 1, sender=alice)
    with ape.reverts("OpenToken: caller is not a minter"):
        token.mint(bob, 1, sender=alice)


def test_mint_to_zero_address_reverts(token, governance):
    with ape.reverts("erc20: mint to the zero address"):
        token.mint(ZERO_ADDRESS, 1, sender=governance)


# ---------------------------------------------------------------- minter role


def test_governance_grants_and_revokes_minter(token, governance, alice, bob):
    tx = token.set_minter(alice, True, sender=governance)
    assert [token.RoleMinterChanged(minter=alice, status=True)] == tx.events.filter(token.RoleMinterChanged)
    assert token.is_minter(alice)
    token.mint(bob, 7, sender=alice)
    assert token.balanceOf(bob) == 7

    tx = token.set_minter(alice, False, sender=governance)
    assert [token.RoleMinterChanged(minter=alice, status=False)] == tx.events.filter(token.RoleMinterChanged)
    assert not token.is_minter(alice)
    with ape.reverts("OpenToken: caller is not a minter"):
        token.mint(bob, 7, sender=alice)


def test_granted_minter_is_still_capped(token, governance, alice):
    token.set_minter(alice, True, sender=governance)
    token.mint(alice, CAP, sender=alice)
    with ape.reverts("OpenToken: cap exceeded"):
        token.mint(alice, 1, sender=alice)


def test_non_owner_cannot_set_minter(token, governance, alice, bob):
    with ape.reverts("ownable: caller is not the owner"):
        token.set_minter(bob, True, sender=alice)
    # Even a minter cannot appoint minters.
    token.set_minter(alice, True, sender=governance)
    with ape.reverts("ownable: caller is not the owner"):
        token.set_minter(bob, True, sender=alice)
    assert not token.is_minter(bob)


def test_set_minter_rejects_zero_and_owner(token, governance):
    with ape.reverts("erc20: minter is the zero address"):
        token.set_minter(ZERO_ADDRESS, True, sender=governance)
    with ape.reverts("erc20: minter is owner address"):
        token.set_minter(governance, False, sender=governance)
    assert token.is_minter(governance)


# ---------------------------------------------------------------- ERC-20 surface


def test_transfer(token, governance, alice, bob):
    token.mint(alice, 10 * ONE, sender=governance)
    tx = token.transfer(bob, 4 * ONE, sender=alice)
    assert tx.return_value is True
    assert token.balanceOf(alice) == 6 * ONE
    assert token.balanceOf(bob) == 4 * ONE
    assert token.totalSupply() == 10 * ONE
    assert [token.Transfer(sender=alice, receiver=bob, value=4 * ONE)] == tx.events.filter(token.Transfer)


def test_transfer_reverts(token, governance, alice, bob):
    token.mint(alice, ONE, sender=governance)
    with ape.reverts("erc20: transfer amount exceeds balance"):
        token.transfer(bob, ONE + 1, sender=alice)
    with ape.reverts("erc20: transfer to the zero address"):
        token.transfer(ZERO_ADDRESS, 1, sender=alice)
    assert token.balanceOf(alice) == ONE


def test_approve_and_transfer_from(token, governance, alice, bob, carol):
    token.mint(alice, 10 * ONE, sender=governance)
    tx = token.approve(bob, 3 * ONE, sender=alice)
    assert tx.return_value is True
    assert [token.Approval(owner=alice, spender=bob, value=3 * ONE)] == tx.events.filter(token.Approval)
    assert token.allowance(alice, bob) == 3 * ONE

    tx = token.transferFrom(alice, carol, 2 * ONE, sender=bob)
    assert tx.return_value is True
    assert token.balanceOf(carol) == 2 * ONE
    assert token.balanceOf(alice) == 8 * ONE
    assert token.allowance(alice, bob) == ONE

    with ape.reverts("erc20: insufficient allowance"):
        token.transferFrom(alice, carol, ONE + 1, sender=bob)
    with ape.reverts("erc20: insufficient allowance"):
        token.transferFrom(alice, carol, 1, sender=carol)


def test_transfer_from_exceeding_balance(token, governance, alice, bob):
    token.mint(alice, ONE, sender=governance)
    token.approve(bob, 5 * ONE, sender=alice)
    with ape.reverts("erc20: transfer amount exceeds balance"):
        token.transferFrom(alice, bob, 2 * ONE, sender=bob)


def test_infinite_allowance_is_not_spent(token, governance, alice, bob):
    token.mint(alice, 10 * ONE, sender=governance)
    token.approve(bob, MAX_UINT256, sender=alice)
    token.transferFrom(alice, bob, 4 * ONE, sender=bob)
    assert token.allowance(alice, bob) == MAX_UINT256


def test_approve_overwrites_and_rejects_zero_spender(token, alice, bob):
    token.approve(bob, 5, sender=alice)
    token.approve(bob, 2, sender=alice)
    assert token.allowance(alice, bob) == 2
    with ape.reverts("erc20: approve to the zero address"):
        token.approve(ZERO_ADDRESS, 1, sender=alice)


def test_burn(token, governance, alice):
    token.mint(alice, 5 * ONE, sender=governance)
    tx = token.burn(2 * ONE, sender=alice)
    assert token.balanceOf(alice) == 3 * ONE
    assert token.totalSupply() == 3 * ONE
    assert [token.Transfer(sender=alice, receiver=ZERO_ADDRESS, value=2 * ONE)] == tx.events.filter(token.Transfer)
    with ape.reverts("erc20: burn amount exceeds balance"):
        token.burn(3 * ONE + 1, sender=alice)


def test_burn_from(token, governance, alice, bob):
    token.mint(alice, 5 * ONE, sender=governance)
    with ape.reverts("erc20: insufficient allowance"):
        token.burn_from(alice, 1, sender=bob)
    token.approve(bob, 2 * ONE, sender=alice)
    token.burn_from(alice, 2 * ONE, sender=bob)
    assert token.balanceOf(alice) == 3 * ONE
    assert token.allowance(alice, bob) == 0
    assert token.totalSupply() == 3 * ONE
    token.approve(bob, 10 * ONE, sender=alice)
    with ape.reverts("erc20: burn amount exceeds balance"):
        token.burn_from(alice, 4 * ONE, sender=bob)


def test_zero_address_owner_cannot_be_spent_from(token, alice):
    # Even a zero-amount transferFrom / burn_from would write the zero address's allowance.
    with ape.reverts("erc20: approve from the zero address"):
        token.transferFrom(ZERO_ADDRESS, alice, 0, sender=alice)
    with ape.reverts("erc20: approve from the zero address"):
        token.burn_from(ZERO_ADDRESS, 0, sender=alice)


# ---------------------------------------------------------------- ownership


def test_transfer_ownership_moves_minter_role(token, governance, alice, bob):
    tx = token.transfer_ownership(alice, sender=governance)
    assert token.owner() == alice
    assert token.is_minter(alice)
    assert not token.is_minter(governance)
    assert [
        token.RoleMinterChanged(minter=governance, status=False),
        token.RoleMinterChanged(minter=alice, status=True),
    ] == tx.events.filter(token.RoleMinterChanged)
    assert [token.OwnershipTransferred(previous_owner=governance, new_owner=alice)] == tx.events.filter(
        token.OwnershipTransferred
    )

    with ape.reverts("OpenToken: caller is not a minter"):
        token.mint(bob, 1, sender=governance)
    with ape.reverts("ownable: caller is not the owner"):
        token.set_minter(bob, True, sender=governance)
    token.mint(bob, 1, sender=alice)
    token.set_minter(bob, True, sender=alice)
    assert token.is_minter(bob)


def test_transfer_ownership_reverts(token, governance, alice):
    with ape.reverts("ownable: caller is not the owner"):
        token.transfer_ownership(alice, sender=alice)
    with ape.reverts("erc20: new owner is the zero address"):
        token.transfer_ownership(ZERO_ADDRESS, sender=governance)
    assert token.owner() == governance


def test_renounce_ownership(token, governance, alice):
    token.set_minter(alice, True, sender=governance)
    with ape.reverts("ownable: caller is not the owner"):
        token.renounce_ownership(sender=alice)
    token.renounce_ownership(sender=governance)
    assert token.owner() == ZERO_ADDRESS
    assert not token.is_minter(governance)
    with ape.reverts("OpenToken: caller is not a minter"):
        token.mint(alice, 1, sender=governance)
    with ape.reverts("ownable: caller is not the owner"):
        token.set_minter(alice, False, sender=governance)
    # Minters appointed before renouncing keep their (capped) role.
    token.mint(alice, 1, sender=alice)
    assert token.balanceOf(alice) == 1


# ---------------------------------------------------------------- EIP-2612 permit


def test_permit_valid(token, governance, alice, bob, chain, far_deadline):
    token.mint(alice, 10 * ONE, sender=governance)
    assert token.nonces(alice) == 0
    v, r, s = sign_permit(token, alice, alice, bob, 4 * ONE, 0, far_deadline, chain.chain_id)
    # Anyone may submit the signed permit.
    tx = token.permit(alice, bob, 4 * ONE, far_deadline, v, r, s, sender=governance)
    assert token.allowance(alice, bob) == 4 * ONE
    assert token.nonces(alice) == 1
    assert [token.Approval(owner=alice, spender=bob, value=4 * ONE)] == tx.events.filter(token.Approval)
    token.transferFrom(alice, bob, 4 * ONE, sender=bob)
    assert token.balanceOf(bob) == 4 * ONE

    # The next nonce works too.
    v, r, s = sign_permit(token, alice, alice, bob, ONE, 1, far_deadline, chain.chain_id)
    token.permit(alice, bob, ONE, far_deadline, v, r, s, sender=bob)
    assert token.allowance(alice, bob) == ONE
    assert token.nonces(alice) == 2


def test_permit_expired(token, alice, bob, chain):
    deadline = chain.blocks.head.timestamp - 1
    v, r, s = sign_permit(token, alice, alice, bob, ONE, 0, deadline, chain.chain_id)
    with ape.reverts("erc20: expired deadline"):
        token.permit(alice, bob, ONE, deadline, v, r, s, sender=bob)
    assert token.allowance(alice, bob) == 0
    assert token.nonces(alice) == 0


def test_permit_replay_rejected(token, alice, bob, chain, far_deadline):
    v, r, s = sign_permit(token, alice, alice, bob, ONE, 0, far_deadline, chain.chain_id)
    token.permit(alice, bob, ONE, far_deadline, v, r, s, sender=bob)
    token.approve(bob, 0, sender=alice)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, bob, ONE, far_deadline, v, r, s, sender=bob)
    assert token.allowance(alice, bob) == 0
    assert token.nonces(alice) == 1


def test_permit_future_nonce_rejected(token, alice, bob, chain, far_deadline):
    v, r, s = sign_permit(token, alice, alice, bob, ONE, 1, far_deadline, chain.chain_id)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, bob, ONE, far_deadline, v, r, s, sender=bob)


def test_permit_wrong_signer(token, alice, bob, carol, chain, far_deadline):
    # Carol signs a permit that claims to be from Alice.
    v, r, s = sign_permit(token, carol, alice, bob, ONE, 0, far_deadline, chain.chain_id)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, bob, ONE, far_deadline, v, r, s, sender=bob)
    assert token.allowance(alice, bob) == 0


def test_permit_wrong_chain_id(token, alice, bob, chain, far_deadline):
    other_chain = 1 if chain.chain_id != 1 else 5
    v, r, s = sign_permit(token, alice, alice, bob, ONE, 0, far_deadline, other_chain)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, bob, ONE, far_deadline, v, r, s, sender=bob)
    assert token.allowance(alice, bob) == 0
    assert token.nonces(alice) == 0


def test_permit_wrong_verifying_contract(token, alice, bob, chain, far_deadline):
    v, r, s = sign_permit(token, alice, alice, bob, ONE, 0, far_deadline, chain.chain_id, verifying_contract=bob)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, bob, ONE, far_deadline, v, r, s, sender=bob)


def test_permit_tampered_fields(token, alice, bob, carol, chain, far_deadline):
    v, r, s = sign_permit(token, alice, alice, bob, ONE, 0, far_deadline, chain.chain_id)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, bob, 2 * ONE, far_deadline, v, r, s, sender=bob)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, carol, ONE, far_deadline, v, r, s, sender=bob)
    with ape.reverts("erc20: invalid signature"):
        token.permit(alice, bob, ONE, far_deadline + 1, v, r, s, sender=bob)
    token.permit(alice, bob, ONE, far_deadline, v, r, s, sender=bob)
    assert token.allowance(alice, bob) == ONE


def test_permit_malleable_signature_rejected(token, alice, bob, chain, far_deadline):
    v, r, s = sign_permit(token, alice, alice, bob, ONE, 0, far_deadline, chain.chain_id)
    high_s = (SECP256K1_N - int.from_bytes(s, "big")).to_bytes(32, "big")
    flipped_v = 55 - v  # 27 <-> 28
    with ape.reverts("ecdsa: invalid signature `s` value"):
        token.permit(alice, bob, ONE, far_deadline, flipped_v, r, high_s, sender=bob)


def test_permit_zero_spender_rejected(token, alice, chain, far_deadline):
    v, r, s = sign_permit(token, alice, alice, ZERO_ADDRESS, ONE, 0, far_deadline, chain.chain_id)
    with ape.reverts("erc20: approve to the zero address"):
        token.permit(alice, ZERO_ADDRESS, ONE, far_deadline, v, r, s, sender=alice)
