"""AgentVault: registration, stake, budgets, session keys, payments, slashing; each attack by name."""

from __future__ import annotations

import ape
from agent_helpers import (
    AGENT_BUDGET,
    COOLDOWN,
    MAX_PER_CALL,
    MIN_STAKE,
    ONE,
    PERIOD,
    PERIOD_CAP,
    PRICE,
    SLASH_DELAY,
    TOTAL_CAP,
    metered_charge,
    receipts_of,
)
from eth_utils import keccak

from attribution_oracle.agent.vault_typed_data import PaymentAuthorization, sign_payment, sign_validation

PROMPT = keccak(text="plan the spring inspection")


def _auth(vault, signing_key, server, model_id, max_fee=PRICE, nonce=1, deadline=None, chain=None, **over):
    auth = PaymentAuthorization(
        sessionKey=signing_key.address,
        server=server.address,
        modelId=model_id,
        inputHash=PROMPT,
        maxFee=max_fee,
        nonce=nonce,
        deadline=deadline if deadline is not None else chain.pending_timestamp + 600,
    )
    return auth


def _sign(auth, vault, key, chain_id):
    return sign_payment(auth, chain_id, vault.address, key).as_tuple()


def _validation(vault, keys, agent, round_, score, chain_id, work=b"\x11" * 32):
    digest = bytes(vault.configDigest())
    sigs = [sign_validation(digest, agent, round_, score, work, chain_id, vault.address, k) for k in keys]
    sigs.sort(key=lambda s: int(s.signer, 16))
    return [s.as_tuple() for s in sigs]


# ------------------------------------------------------------------ registration, stake, budget


def test_register_stake_deposit_and_read_back(vault, agent_id, agent_owner, session_key, models):
    agent = vault.getAgent(agent_id)
    assert agent.owner == agent_owner.address and agent.cardURI.startswith("sha256://")
    assert vault.stakeOf(agent_id) == MIN_STAKE and vault.budgetOf(agent_id) == AGENT_BUDGET
    key = vault.sessionKey(session_key)
    assert (key.agentId, key.maxPricePerCall, key.periodCap, key.totalCap) == (
        agent_id,
        MAX_PER_CALL,
        PERIOD_CAP,
        TOTAL_CAP,
    )
    assert vault.allowedModel(session_key, models[0]) and not vault.allowedModel(session_key, models[2])


def test_session_key_pays_flat_model_through_the_vault(
    vault, agent_id, session_key, models, market, token, agent_owner
):
    tx = vault.pay(models[0], PROMPT, PRICE, sender=session_key)
    receipt = receipts_of(market, tx)[0]
    assert receipt.payer == agent_owner.address and receipt.fee == PRICE
    assert vault.budgetOf(agent_id) == AGENT_BUDGET - PRICE
    assert vault.sessionKey(session_key).totalSpent == PRICE
    event = tx.decode_logs(vault.SessionPaid)[0]
    assert (event.agentId, event.requestId, event.fee) == (agent_id, receipt.requestId, PRICE)


def test_metered_call_refund_goes_to_the_agent_owner(
    vault, agent_id, session_key, models, market, token, agent_owner, operator
):
    from agent_helpers import meter_of

    tx = vault.pay(models[1], PROMPT, 3 * ONE, sender=session_key)
    receipt, meter = receipts_of(market, tx)[0], meter_of(market, tx)
    before = token.balanceOf(agent_owner)
    market.markServedMetered([(receipt.arg(), meter, 500, 200)], sender=operator)
    assert token.balanceOf(agent_owner) == before + 3 * ONE - metered_charge(500, 200)


def test_owner_withdraws_unspent_budget(vault, agent_id, agent_owner, token):
    before = token.balanceOf(agent_owner)
    vault.withdraw(agent_id, AGENT_BUDGET, sender=agent_owner)
    assert token.balanceOf(agent_owner) == before + AGENT_BUDGET and vault.budgetOf(agent_id) == 0


def test_attack_stranger_withdraws_agent_budget_refused(vault, agent_id, stranger):
    with ape.reverts("AgentVault: caller is not the agent owner"):
        vault.withdraw(agent_id, ONE, sender=stranger)


def test_attack_withdraw_above_budget_refused(vault, agent_id, agent_owner):
    with ape.reverts("AgentVault: amount above budget"):
        vault.withdraw(agent_id, AGENT_BUDGET + 1, sender=agent_owner)


def test_attack_spend_above_budget_refused(vault, agent_id, agent_owner, session_key, models):
    vault.withdraw(agent_id, AGENT_BUDGET - ONE, sender=agent_owner)
    with ape.reverts("AgentVault: budget exhausted"):
        vault.pay(models[0], PROMPT, PRICE, sender=session_key)


def test_attack_agent_without_minimum_stake_cannot_pay(vault, agent_id, agent_owner, session_key, models):
    vault.requestUnstake(agent_id, 1, sender=agent_owner)
    with ape.reverts("AgentVault: agent stake below minimum"):
        vault.pay(models[0], PROMPT, PRICE, sender=session_key)


# ------------------------------------------------------------------ session-key caps


def test_attack_session_key_over_period_cap_refused(vault, agent_id, session_key, models, chain):
    for _ in range(PERIOD_CAP // MAX_PER_CALL):
        vault.pay(models[1], PROMPT, MAX_PER_CALL, sender=session_key)
    with ape.reverts("AgentVault: period cap exceeded"):
        vault.pay(models[0], PROMPT, PRICE, sender=session_key)
    chain.pending_timestamp += PERIOD  # the next period has a fresh allowance
    vault.pay(models[0], PROMPT, PRICE, sender=session_key)


def test_attack_session_key_over_total_cap_refused(vault, agent_id, session_key, models, chain):
    spent = 0
    while spent + MAX_PER_CALL <= TOTAL_CAP:
        if vault.sessionKey(session_key).periodSpent + MAX_PER_CALL > PERIOD_CAP:
            chain.pending_timestamp += PERIOD
        vault.pay(models[1], PROMPT, MAX_PER_CALL, sender=session_key)
        spent += MAX_PER_CALL
    chain.pending_timestamp += PERIOD
    with ape.reverts("AgentVault: total cap exceeded"):
        vault.pay(models[0], PROMPT, PRICE, sender=session_key)


def test_attack_expired_session_key_refused(vault, agent_id, session_key, models, chain):
    chain.pending_timestamp = vault.sessionKey(session_key).expiry
    with ape.reverts("AgentVault: session key expired"):
        vault.pay(models[0], PROMPT, PRICE, sender=session_key)


def test_attack_revoked_session_key_refused(vault, agent_id, agent_owner, session_key, models):
    vault.revoke(session_key, sender=agent_owner)
    with ape.reverts("AgentVault: session key revoked"):
        vault.pay(models[0], PROMPT, PRICE, sender=session_key)
    with ape.reverts("AgentVault: session key already granted"):
        vault.grant(agent_id, session_key, ONE, 2**39, 60, ONE, ONE, [models[0]], sender=agent_owner)


def test_attack_stranger_revokes_or_grants_refused(vault, agent_id, stranger, session_key, models):
    with ape.reverts("AgentVault: caller is not the agent owner"):
        vault.revoke(session_key, sender=stranger)
    with ape.reverts("AgentVault: caller is not the agent owner"):
        vault.grant(agent_id, stranger, ONE, 2**39, 60, ONE, ONE, [models[0]], sender=stranger)


def test_attack_session_key_model_outside_allow_list_refused(vault, agent_id, session_key, models):
    with ape.reverts("AgentVault: model not on the key's allow-list"):
        vault.pay(models[2], PROMPT, PRICE, sender=session_key)


def test_attack_session_key_price_above_maximum_refused(vault, agent_id, session_key, models):
    with ape.reverts("AgentVault: price above the key's maximum per call"):
        vault.pay(models[1], PROMPT, MAX_PER_CALL + 1, sender=session_key)


def test_attack_unknown_session_key_refused(vault, agent_id, stranger, models):
    with ape.reverts("AgentVault: unknown session key"):
        vault.pay(models[0], PROMPT, PRICE, sender=stranger)


# ------------------------------------------------------------------ signed authorizations (x402 path)


def test_signed_authorization_paid_by_the_named_server(vault, agent_id, signing_key, operator, models, market, chain):
    auth = _auth(vault, signing_key, operator, models[0], chain=chain)
    assert bytes(vault.paymentDigest(auth.as_tuple())) == __import__(
        "attribution_oracle.agent.vault_typed_data", fromlist=["payment_digest"]
    ).payment_digest(auth, chain.chain_id, vault.address)
    tx = vault.payWithAuthorization(auth.as_tuple(), _sign(auth, vault, signing_key, chain.chain_id), sender=operator)
    assert receipts_of(market, tx)[0].fee == PRICE
    assert vault.usedNonce(signing_key.address, 1)


def test_attack_replayed_payment_signature_refused(vault, agent_id, signing_key, operator, models, chain):
    auth = _auth(vault, signing_key, operator, models[0], chain=chain)
    sig = _sign(auth, vault, signing_key, chain.chain_id)
    vault.payWithAuthorization(auth.as_tuple(), sig, sender=operator)
    with ape.reverts("AgentVault: authorization already used"):
        vault.payWithAuthorization(auth.as_tuple(), sig, sender=operator)


def test_attack_authorization_front_run_refused(vault, agent_id, signing_key, operator, stranger, models, chain):
    auth = _auth(vault, signing_key, operator, models[0], chain=chain)
    sig = _sign(auth, vault, signing_key, chain.chain_id)
    with ape.reverts("AgentVault: authorization is for another server"):
        vault.payWithAuthorization(auth.as_tuple(), sig, sender=stranger)
    vault.payWithAuthorization(auth.as_tuple(), sig, sender=operator)  # the intended server still can


def test_attack_tampered_payment_signature_amount_refused(vault, agent_id, signing_key, operator, models, chain):
    auth = _auth(vault, signing_key, operator, models[1], max_fee=ONE, chain=chain)
    sig = _sign(auth, vault, signing_key, chain.chain_id)
    tampered = auth.as_tuple()[:4] + (MAX_PER_CALL,) + auth.as_tuple()[5:]
    with ape.reverts("AgentVault: bad authorization signature"):
        vault.payWithAuthorization(tampered, sig, sender=operator)


def test_attack_payment_signature_for_another_chain_refused(vault, agent_id, signing_key, operator, models, chain):
    auth = _auth(vault, signing_key, operator, models[0], chain=chain)
    with ape.reverts("AgentVault: bad authorization signature"):
        vault.payWithAuthorization(
            auth.as_tuple(), _sign(auth, vault, signing_key, chain.chain_id + 1), sender=operator
        )


def test_attack_payment_signature_high_s_refused(vault, agent_id, signing_key, operator, models, chain):
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    auth = _auth(vault, signing_key, operator, models[0], chain=chain)
    v, r, s = _sign(auth, vault, signing_key, chain.chain_id)
    flipped = (55 - v, r, (n - int.from_bytes(s, "big")).to_bytes(32, "big"))
    with ape.reverts():
        vault.payWithAuthorization(auth.as_tuple(), flipped, sender=operator)


def test_attack_expired_authorization_refused(vault, agent_id, signing_key, operator, models, chain):
    auth = _auth(vault, signing_key, operator, models[0], deadline=chain.pending_timestamp - 1, chain=chain)
    with ape.reverts("AgentVault: authorization expired"):
        vault.payWithAuthorization(auth.as_tuple(), _sign(auth, vault, signing_key, chain.chain_id), sender=operator)


# ------------------------------------------------------------------ slashing


def test_low_validation_score_slashes_the_documented_fraction(
    vault, agent_id, validator_keys, stranger, token, treasury, chain
):
    before = token.balanceOf(treasury)
    tx = vault.submitValidation(
        agent_id,
        1,
        20,
        b"\x11" * 32,
        _validation(vault, validator_keys[:2], agent_id, 1, 20, chain.chain_id),
        sender=stranger,
    )
    expected = MIN_STAKE * vault.slashBps() // 10_000
    assert tx.decode_logs(vault.ValidationReported)[0].slashed == expected
    assert token.balanceOf(treasury) == before + expected and vault.stakeOf(agent_id) == MIN_STAKE - expected


def test_passing_validation_score_slashes_nothing(vault, agent_id, validator_keys, stranger, chain):
    vault.submitValidation(
        agent_id,
        1,
        90,
        b"\x11" * 32,
        _validation(vault, validator_keys[:2], agent_id, 1, 90, chain.chain_id),
        sender=stranger,
    )
    assert vault.stakeOf(agent_id) == MIN_STAKE and vault.lastRound(agent_id) == 1


def test_attack_replayed_validator_report_refused(vault, agent_id, validator_keys, stranger, chain):
    sigs = _validation(vault, validator_keys[:2], agent_id, 1, 20, chain.chain_id)
    vault.submitValidation(agent_id, 1, 20, b"\x11" * 32, sigs, sender=stranger)
    with ape.reverts("AgentVault: round not increasing"):
        vault.submitValidation(agent_id, 1, 20, b"\x11" * 32, sigs, sender=stranger)


def test_attack_validator_report_signed_by_non_validator_refused(vault, agent_id, validator_keys, stranger, chain):
    from eth_account import Account

    outsider = Account.from_key(keccak(text="agent-tests:outsider"))
    with ape.reverts():
        vault.submitValidation(
            agent_id,
            1,
            0,
            b"\x11" * 32,
            _validation(vault, [validator_keys[0], outsider], agent_id, 1, 0, chain.chain_id),
            sender=stranger,
        )
    with ape.reverts("AgentVault: wrong number of signatures"):
        vault.submitValidation(
            agent_id,
            1,
            0,
            b"\x11" * 32,
            _validation(vault, validator_keys[:1], agent_id, 1, 0, chain.chain_id),
            sender=stranger,
        )


def test_attack_duplicate_validator_signature_refused(vault, agent_id, validator_keys, stranger, chain):
    one = _validation(vault, validator_keys[:1], agent_id, 1, 0, chain.chain_id)
    with ape.reverts("AgentVault: signers not ascending"):
        vault.submitValidation(agent_id, 1, 0, b"\x11" * 32, one + one, sender=stranger)


def test_governance_slash_waits_its_delay(vault, agent_id, governance, token, treasury, chain):
    vault.proposeSlash(agent_id, 30 * ONE, "spam", sender=governance)
    with ape.reverts("AgentVault: slash delay not over"):
        vault.executeSlash(agent_id, sender=governance)
    chain.pending_timestamp += SLASH_DELAY
    before = token.balanceOf(treasury)
    vault.executeSlash(agent_id, sender=governance)
    assert token.balanceOf(treasury) == before + 30 * ONE and vault.stakeOf(agent_id) == MIN_STAKE - 30 * ONE


def test_attack_stranger_slashes_refused(vault, agent_id, stranger):
    with ape.reverts("ownable: caller is not the owner"):
        vault.proposeSlash(agent_id, ONE, "grief", sender=stranger)


def test_attack_unstake_during_pending_slash_refused(vault, agent_id, agent_owner, governance, token, treasury, chain):
    vault.proposeSlash(agent_id, 40 * ONE, "bad answers", sender=governance)
    vault.requestUnstake(agent_id, MIN_STAKE, sender=agent_owner)
    chain.pending_timestamp += COOLDOWN
    with ape.reverts("AgentVault: slash pending"):
        vault.withdrawStake(agent_id, sender=agent_owner)
    before = token.balanceOf(treasury)
    vault.executeSlash(agent_id, sender=governance)  # the unstaking stake is still slashable
    assert token.balanceOf(treasury) == before + 40 * ONE
    vault.withdrawStake(agent_id, sender=agent_owner)
    assert vault.unstakingOf(agent_id) == 0


def test_attack_unstake_before_cooldown_refused(vault, agent_id, agent_owner):
    vault.requestUnstake(agent_id, ONE, sender=agent_owner)
    with ape.reverts("AgentVault: unstake cooldown not over"):
        vault.withdrawStake(agent_id, sender=agent_owner)


def test_cooldown_shorter_than_slash_delay_refused(vault, governance):
    with ape.reverts("AgentVault: cooldown shorter than slash delay"):
        vault.setParameters(MIN_STAKE, 10, 11, 50, 1_000, sender=governance)


def test_vault_balance_is_budget_plus_stake(vault, agent_id, session_key, models, token):
    vault.pay(models[0], PROMPT, PRICE, sender=session_key)
    total = vault.budgetOf(agent_id) + vault.stakeOf(agent_id) + vault.unstakingOf(agent_id)
    assert token.balanceOf(vault) == total
