"""Per-token prices: a payment authorizes a maximum, the operator settles the actual token counts."""

from __future__ import annotations

import ape
from agent_helpers import ONE, PRICE, RATES, meter_of, metered_charge, receipts_of, split_fee
from eth_utils import keccak

MAX = 3 * ONE


def _pay_metered(market, payer, model_id, max_fee=MAX):
    tx = market.payForInference(model_id, keccak(text="metered prompt"), max_fee, sender=payer)
    return tx, receipts_of(market, tx)[0], meter_of(market, tx)


def test_metered_payment_escrows_the_maximum_and_binds_the_rates(market, models, direct_payer, token):
    before = token.balanceOf(direct_payer)
    tx, receipt, meter = _pay_metered(market, direct_payer, models[1])
    assert receipt.fee == MAX and token.balanceOf(direct_payer) == before - MAX
    assert meter[:3] == RATES and meter[3:] == (500, 5_000, 1_000)
    assert market.meters(receipt.requestId) == keccak(b"".join(int(x).to_bytes(32, "big") for x in meter))


def test_metered_settlement_charges_tokens_splits_exactly_and_refunds_the_rest(
    market, models, direct_payer, operator, token, treasury, distributor, model_owner
):
    _, receipt, meter = _pay_metered(market, direct_payer, models[1])
    payer_before, treasury_before = token.balanceOf(direct_payer), token.balanceOf(treasury)
    pool_before = token.balanceOf(distributor)
    tx = market.markServedMetered([(receipt.arg(), meter, 1234, 567)], sender=operator)
    charged = metered_charge(1234, 567)
    protocol, owner, datanets, contributors = split_fee(charged)
    event = tx.decode_logs(market.InferenceCharged)[0]
    assert (event.charged, event.refunded) == (charged, MAX - charged)
    assert (event.protocolFee, event.ownerAmount, event.datanetOwnersAmount, event.contributorsAmount) == (
        protocol, owner, datanets, contributors,
    )  # fmt: skip
    assert protocol + owner + datanets + contributors == charged
    assert token.balanceOf(direct_payer) == payer_before + MAX - charged  # refunded in the same transaction
    assert token.balanceOf(treasury) == treasury_before + protocol
    assert token.balanceOf(distributor) == pool_before + datanets + contributors
    assert market.earnings(model_owner) == owner
    assert market.requestStatus(receipt.requestId) == 2
    assert market.meters(receipt.requestId) == b"\x00" * 32


def test_attack_settlement_above_authorized_maximum_refused(market, models, direct_payer, operator):
    _, receipt, meter = _pay_metered(market, direct_payer, models[1], max_fee=ONE)
    with ape.reverts("InferenceMarket: charge above authorized maximum"):
        market.markServedMetered([(receipt.arg(), meter, 0, 10_000)], sender=operator)


def test_attack_metered_request_marked_served_flat_to_keep_the_maximum_refused(market, models, direct_payer, operator):
    _, receipt, _ = _pay_metered(market, direct_payer, models[1])
    with ape.reverts("InferenceMarket: metered request needs token counts"):
        market.markServed([receipt.arg()], sender=operator)


def test_attack_rates_raised_after_payment_do_not_apply(
    market, models, direct_payer, operator, model_registry, model_owner
):
    _, receipt, meter = _pay_metered(market, direct_payer, models[1])
    model_registry.setTokenRates(models[1], (10 * ONE, 10 * ONE, ONE), sender=model_owner)
    forged = (10 * ONE, 10 * ONE, ONE, *meter[3:])
    with ape.reverts("InferenceMarket: not a metered request"):
        market.markServedMetered([(receipt.arg(), forged, 100, 100)], sender=operator)
    tx = market.markServedMetered([(receipt.arg(), meter, 100, 100)], sender=operator)
    assert tx.decode_logs(market.InferenceCharged)[0].charged == metered_charge(100, 100)


def test_attack_metered_settlement_by_non_operator_refused(market, models, direct_payer, stranger):
    _, receipt, meter = _pay_metered(market, direct_payer, models[1])
    with ape.reverts("InferenceMarket: caller is not an operator"):
        market.markServedMetered([(receipt.arg(), meter, 1, 1)], sender=stranger)


def test_attack_metered_request_served_twice_refused(market, models, direct_payer, operator):
    _, receipt, meter = _pay_metered(market, direct_payer, models[1])
    market.markServedMetered([(receipt.arg(), meter, 1, 1)], sender=operator)
    with ape.reverts("InferenceMarket: not a metered request"):
        market.markServedMetered([(receipt.arg(), meter, 1, 1)], sender=operator)


def test_metered_maximum_below_flat_fee_refused(market, models, direct_payer):
    with ape.reverts("InferenceMarket: maximum below the flat fee"):
        market.payForInference(models[1], keccak(text="x"), RATES[2] - 1, sender=direct_payer)


def test_unserved_metered_request_refunded_in_full(market, models, direct_payer, stranger, token, chain):
    _, receipt, _ = _pay_metered(market, direct_payer, models[1])
    chain.pending_timestamp += 3_601
    before = token.balanceOf(direct_payer)
    market.refund(receipt.arg(), sender=stranger)
    assert token.balanceOf(direct_payer) == before + MAX


def test_flat_model_still_charges_its_price(market, models, direct_payer, operator):
    tx = market.payForInference(models[0], keccak(text="flat"), PRICE, sender=direct_payer)
    receipt = receipts_of(market, tx)[0]
    assert receipt.fee == PRICE and receipt.split == split_fee(PRICE)
    market.markServed([receipt.arg()], sender=operator)
    assert market.requestStatus(receipt.requestId) == 2


def test_pay_for_someone_else_makes_them_payer_of_record(market, models, direct_payer, stranger, token, chain):
    tx = market.payForInferenceFor(stranger, models[1], keccak(text="gift"), MAX, sender=direct_payer)
    receipt = receipts_of(market, tx)[0]
    assert receipt.payer == stranger.address
    chain.pending_timestamp += 3_601
    before = token.balanceOf(stranger)
    market.refund(receipt.arg(), sender=direct_payer)
    assert token.balanceOf(stranger) == before + MAX


def test_token_rates_read_back_and_bounded(model_registry, models, model_owner):
    assert tuple(model_registry.tokenRates(models[1])) == RATES
    assert tuple(model_registry.tokenRates(models[0])) == (0, 0, 0)
    big = 2**85 - 1
    model_registry.setTokenRates(models[0], (big, big, big), sender=model_owner)
    assert tuple(model_registry.tokenRates(models[0])) == (big, big, big)
    with ape.reverts("ModelRegistry: rate too large"):
        model_registry.setTokenRates(models[0], (2**85, 0, 0), sender=model_owner)


def test_attack_stranger_sets_token_rates_refused(model_registry, models, stranger):
    with ape.reverts("ModelRegistry: caller is not the model owner"):
        model_registry.setTokenRates(models[0], (1, 1, 1), sender=stranger)
