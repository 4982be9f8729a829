"""InferenceMarket: deployment, governance, payments (single, batch), service, refunds, earnings and views.

The attack-shaped tests (forged receipts, refund timing, permits, maxFee, ...) live in
``test_settlement_security.py``; the split property in ``test_settlement_properties.py``.
"""

from __future__ import annotations

import ape
import pytest
from contract_helpers import ZERO_ADDRESS, content_hash
from eth_utils import keccak
from settlement_helpers import (
    EPOCH_BLOCKS,
    NOT_AWAITING,
    NOT_OWNER,
    POOL_PER_INFERENCE,
    PRICE,
    PROTOCOL_FEE_BPS,
    SERVICE_WINDOW,
    SPLIT,
    STATUS_NONE,
    STATUS_PAID,
    STATUS_SERVED,
    pay,
    receipts_of,
    split_fee,
)

SERVED = b"\x00" * 31 + b"\x01"


@pytest.fixture
def paid(system, funded_payer, model_id):
    """One paid, unserved request."""
    return pay(system, funded_payer, model_id)


# ---------------------------------------------------------------- deployment


def test_deployment_wires_the_system(system, token, model_registry, distributor, treasury, governance, operator):
    market = system
    assert market.token() == token.address
    assert market.models() == model_registry.address
    assert market.distributor() == distributor.address
    assert market.treasury() == treasury.address
    assert market.owner() == governance.address
    assert market.epochBlocks() == EPOCH_BLOCKS
    assert market.serviceWindow() == SERVICE_WINDOW
    assert market.isOperator(operator)
    assert not market.isOperator(governance)
    assert market.requestCount() == 0


def test_constructor_rejects_a_zero_epoch_length(project, token, model_registry, distributor, treasury, governance):
    with ape.reverts("InferenceMarket: zero epoch length"):
        project.InferenceMarket.deploy(token, model_registry, distributor, treasury, 0, 1, sender=governance)


@pytest.mark.parametrize("missing", ["treasury", "distributor"])
def test_constructor_rejects_zero_addresses(project, token, model_registry, distributor, treasury, governance, missing):
    args = {"distributor": distributor.address, "treasury": treasury.address, missing: ZERO_ADDRESS}
    with ape.reverts("InferenceMarket: zero address"):
        project.InferenceMarket.deploy(
            token, model_registry, args["distributor"], args["treasury"], 1, 1, sender=governance
        )


# ---------------------------------------------------------------- governance


def test_set_operator_is_governance_only(system, stranger):
    with ape.reverts(NOT_OWNER):
        system.setOperator(stranger, True, sender=stranger)


def test_set_operator_appoints_and_removes_operators(system, governance, stranger, paid):
    market = system
    tx = market.setOperator(stranger, True, sender=governance)
    [log] = tx.decode_logs(market.OperatorSet)
    assert (log.operator, log.enabled) == (stranger.address, True)
    assert market.isOperator(stranger)
    market.setOperator(stranger, False, sender=governance)
    assert not market.isOperator(stranger)
    with ape.reverts("InferenceMarket: caller is not an operator"):
        market.markServed([paid.arg()], sender=stranger)


def test_set_treasury_is_governance_only(system, stranger):
    with ape.reverts(NOT_OWNER):
        system.setTreasury(stranger, sender=stranger)


def test_set_treasury_rejects_the_zero_address(system, governance):
    with ape.reverts("InferenceMarket: zero address"):
        system.setTreasury(ZERO_ADDRESS, sender=governance)


def test_protocol_fees_go_to_the_new_treasury(system, token, governance, stranger, operator, paid):
    tx = system.setTreasury(stranger, sender=governance)
    assert tx.decode_logs(system.TreasurySet)[0].treasury == stranger.address
    assert system.treasury() == stranger.address
    before = token.balanceOf(stranger)
    system.markServed([paid.arg()], sender=operator)
    assert token.balanceOf(stranger) - before == paid.split[0]


def test_ownership_transfer_and_renounce(system, governance, stranger, operator):
    with ape.reverts(NOT_OWNER):
        system.transfer_ownership(stranger, sender=stranger)
    with ape.reverts("ownable: new owner is the zero address"):
        system.transfer_ownership(ZERO_ADDRESS, sender=governance)
    system.transfer_ownership(stranger, sender=governance)
    assert system.owner() == stranger.address
    with ape.reverts(NOT_OWNER):
        system.setOperator(governance, True, sender=governance)
    system.setOperator(governance, True, sender=stranger)
    system.renounce_ownership(sender=stranger)
    assert system.owner() == ZERO_ADDRESS
    with ape.reverts(NOT_OWNER):
        system.setOperator(operator, False, sender=stranger)


# ------------------------------------------------------------------ payments


def test_pay_for_inference_escrows_the_fee_and_commits_to_the_receipt(
    system, token, funded_payer, model_id, model_owner
):
    market = system
    before = token.balanceOf(funded_payer)
    input_hash = keccak(text="what is the dose?")
    tx = market.payForInference(model_id, input_hash, PRICE, sender=funded_payer)
    assert tx.return_value == 1
    assert token.balanceOf(funded_payer) == before - PRICE
    assert token.balanceOf(market) == PRICE
    [paid] = tx.decode_logs(market.InferencePaid)
    assert (paid.requestId, paid.payer, paid.modelId) == (1, funded_payer.address, model_id)
    assert (bytes(paid.inputHash), paid.fee, paid.epoch) == (input_hash, PRICE, tx.block_number // EPOCH_BLOCKS)
    [split] = tx.decode_logs(market.FeeSplit)
    assert split.modelOwner == model_owner.address
    assert split.paidAt == ape.chain.blocks[tx.block_number].timestamp
    expected = split_fee(PRICE, *SPLIT, PROTOCOL_FEE_BPS)
    assert (split.protocolFee, split.ownerAmount, split.datanetOwnersAmount, split.contributorsAmount) == expected
    [receipt] = receipts_of(market, tx)
    assert market.commitments(1) == receipt.commitment()
    assert market.requestStatus(1) == STATUS_PAID
    assert market.requestCount() == 1


def test_request_ids_count_up(system, funded_payer, model_id):
    assert [pay(system, funded_payer, model_id).requestId for _ in range(3)] == [1, 2, 3]


def test_a_max_fee_above_the_price_charges_only_the_price(system, token, funded_payer, model_id):
    before = token.balanceOf(funded_payer)
    receipt = pay(system, funded_payer, model_id, max_fee=5 * PRICE)
    assert receipt.fee == PRICE
    assert before - token.balanceOf(funded_payer) == PRICE


def test_price_above_max_fee_is_rejected(system, funded_payer, model_id):
    with ape.reverts("InferenceMarket: price above maxFee"):
        system.payForInference(model_id, keccak(text="x"), PRICE - 1, sender=funded_payer)


def test_unknown_model_is_rejected(system, funded_payer):
    with ape.reverts("ModelRegistry: unknown model"):
        system.payForInference(99, keccak(text="x"), PRICE, sender=funded_payer)


def test_payment_without_allowance_is_rejected(system, token, governance, stranger, model_id):
    token.mint(stranger, PRICE, sender=governance)
    with ape.reverts("erc20: insufficient allowance"):
        system.payForInference(model_id, keccak(text="x"), PRICE, sender=stranger)


def test_payment_follows_a_new_price(system, model_registry, model_owner, funded_payer, model_id):
    model_registry.setPrice(model_id, 3 * PRICE, sender=model_owner)
    receipt = pay(system, funded_payer, model_id, max_fee=3 * PRICE)
    assert receipt.fee == 3 * PRICE
    assert receipt.split == split_fee(3 * PRICE, *SPLIT, PROTOCOL_FEE_BPS)


def test_batch_pays_for_several_inferences_with_one_transfer(system, token, funded_payer, model_id):
    market = system
    before = token.balanceOf(funded_payer)
    hashes = [keccak(text=f"q{i}") for i in range(3)]
    tx = market.payForInferenceBatch([model_id] * 3, hashes, [PRICE] * 3, sender=funded_payer)
    assert tx.return_value == [1, 2, 3]
    assert before - token.balanceOf(funded_payer) == 3 * PRICE
    transfers = tx.decode_logs(token.Transfer)
    assert [(t.sender, t.receiver, t.value) for t in transfers] == [(funded_payer.address, market.address, 3 * PRICE)]
    receipts = receipts_of(market, tx)
    assert [bytes(p.inputHash) for p in tx.decode_logs(market.InferencePaid)] == hashes
    for receipt in receipts:
        assert market.commitments(receipt.requestId) == receipt.commitment()
        assert market.requestStatus(receipt.requestId) == STATUS_PAID


@pytest.mark.parametrize("short", ["inputHashes", "maxFees", "modelIds"])
def test_batch_rejects_lists_of_different_lengths(system, funded_payer, model_id, short):
    lists = {"modelIds": [model_id] * 2, "inputHashes": [keccak(text="a"), keccak(text="b")], "maxFees": [PRICE] * 2}
    lists[short] = lists[short][:1]
    with ape.reverts("InferenceMarket: length mismatch"):
        system.payForInferenceBatch(lists["modelIds"], lists["inputHashes"], lists["maxFees"], sender=funded_payer)


def test_batch_is_all_or_nothing(system, token, funded_payer, model_id):
    before = token.balanceOf(funded_payer)
    with ape.reverts("InferenceMarket: price above maxFee"):
        system.payForInferenceBatch(
            [model_id] * 3, [keccak(text=f"q{i}") for i in range(3)], [PRICE, PRICE, PRICE - 1], sender=funded_payer
        )
    assert system.requestCount() == 0
    assert token.balanceOf(funded_payer) == before


def test_empty_batch_pays_nothing(system, funded_payer):
    tx = system.payForInferenceBatch([], [], [], sender=funded_payer)
    assert tx.return_value == []
    assert system.requestCount() == 0


# ------------------------------------------------------------------- service


def test_mark_served_releases_the_fees(
    system, token, distributor, treasury, operator, model_owner, funded_payer, model_id
):
    market = system
    receipts = [pay(market, funded_payer, model_id, label=f"q{i}") for i in range(2)]
    treasury_before = token.balanceOf(treasury)
    tx = market.markServed([r.arg() for r in receipts], sender=operator)
    protocol, owner, datanets, contributors = split_fee(PRICE, *SPLIT, PROTOCOL_FEE_BPS)
    assert token.balanceOf(treasury) - treasury_before == 2 * protocol
    assert market.earnings(model_owner) == 2 * owner
    assert token.balanceOf(market) == 2 * owner  # only the owner's credited share stays in the market
    assert distributor.totalFunded() == 2 * (datanets + contributors) == 2 * POOL_PER_INFERENCE
    assert token.balanceOf(distributor) == 2 * POOL_PER_INFERENCE
    [funded] = tx.decode_logs(distributor.Funded)
    assert (funded.funder, funded.amount, funded.totalFunded) == (market.address, 2 * POOL_PER_INFERENCE, funded.amount)
    served = tx.decode_logs(market.InferenceServed)
    assert [(s.requestId, s.operator) for s in served] == [(1, operator.address), (2, operator.address)]
    for r in receipts:
        assert market.requestStatus(r.requestId) == STATUS_SERVED
        assert market.commitments(r.requestId) == SERVED


def test_mark_served_twice_is_rejected(system, operator, paid):
    system.markServed([paid.arg()], sender=operator)
    with ape.reverts(NOT_AWAITING):
        system.markServed([paid.arg()], sender=operator)


def test_the_same_receipt_twice_in_one_batch_is_rejected(system, operator, paid):
    with ape.reverts(NOT_AWAITING):
        system.markServed([paid.arg(), paid.arg()], sender=operator)
    assert system.requestStatus(paid.requestId) == STATUS_PAID


def test_a_receipt_of_a_request_never_paid_is_rejected(system, operator, paid):
    with ape.reverts(NOT_AWAITING):
        system.markServed([paid._replace(requestId=2).arg()], sender=operator)


def test_mark_served_with_no_receipts_does_nothing(system, distributor, operator):
    tx = system.markServed([], sender=operator)
    assert not tx.decode_logs(system.InferenceServed)
    assert distributor.totalFunded() == 0


def test_a_free_model_moves_no_tokens(
    system, model_registry, token, distributor, treasury, model_owner, stranger, operator
):
    """Price 0: no allowance needed, and serving sends nothing to the treasury or the pool (no `fund(0)`)."""
    version = (1, 1)
    tx = model_registry.register(content_hash("b"), content_hash("free"), [version], 0, SPLIT, "", sender=model_owner)
    receipt = pay(system, stranger, tx.return_value, max_fee=0)
    assert receipt.fee == 0 and receipt.split == (0, 0, 0, 0)
    before = token.balanceOf(treasury)
    served = system.markServed([receipt.arg()], sender=operator)
    assert not served.decode_logs(distributor.Funded)
    assert token.balanceOf(treasury) == before
    assert distributor.totalFunded() == 0
    assert system.requestStatus(receipt.requestId) == STATUS_SERVED


def test_zero_protocol_fee_sends_nothing_to_the_treasury(
    system, model_registry, token, treasury, governance, operator, funded_payer, model_id
):
    model_registry.setProtocolFee(0, sender=governance)
    receipt = pay(system, funded_payer, model_id)
    assert receipt.split == split_fee(PRICE, *SPLIT, 0)
    before = token.balanceOf(treasury)
    system.markServed([receipt.arg()], sender=operator)
    assert token.balanceOf(treasury) == before


# ------------------------------------------------------------------ earnings


def test_withdraw_with_nothing_earned_is_rejected(system, stranger):
    with ape.reverts("InferenceMarket: nothing to withdraw"):
        system.withdrawEarnings(sender=stranger)


# --------------------------------------------------------------------- views


def test_request_status_of_an_unknown_request_is_none(system):
    assert system.requestStatus(1) == STATUS_NONE
    assert system.commitments(1) == b"\x00" * 32


def test_quote_applies_the_split_rule(system, model_id):
    quote = system.quote(model_id)
    assert tuple(quote) == split_fee(PRICE, *SPLIT, PROTOCOL_FEE_BPS)
    assert tuple(system.splitFee(PRICE, *SPLIT, PROTOCOL_FEE_BPS)) == tuple(quote)


def test_quote_of_an_unknown_model_is_rejected(system):
    with ape.reverts("ModelRegistry: unknown model"):
        system.quote(42)
