"""Attacks on settlement, one test per attack, each named after it.

Reports: replays (another chain id, another deployment, an old epoch, the old config after a rotation),
malleable / duplicate / unordered / missing / extra / foreign signatures, tampered fields, over-allocation,
a decreasing total, governance forging a report. Claims: double claims, someone else's proof, relayed claims,
the veto window. Market: refunds, forged receipts, operators, earnings, permits, maxFee, inactive models.
"""

from __future__ import annotations

import ape
import pytest
from contract_helpers import content_hash
from eth_account import Account
from eth_utils import keccak
from settlement_helpers import (
    CLAIM_DELAY,
    NOT_AWAITING,
    NOT_OWNER,
    ONE,
    PRICE,
    SECP256K1_N,
    SERVICE_WINDOW,
    SPLIT,
    STATUS_PAID,
    STATUS_REFUNDED,
    STATUS_SERVED,
    THRESHOLD,
    address_of,
    apply_claim_delay,
    apply_oracle_config,
    build_report,
    fund_pool,
    pay,
    permit_signature,
    receipts_of,
    typed_digest,
)

ALICE, BOB, CAROL = (address_of(n) for n in ("alice", "bob", "carol"))
NOT_SIGNER = "RewardDistributor: not an oracle signer"
NOT_ASCENDING = "RewardDistributor: signers not ascending"
WRONG_COUNT = "RewardDistributor: wrong number of signatures"


@pytest.fixture
def pool(system, funded_payer, operator, model_id):
    """19 OPEN funded into the distributor through InferenceMarket.markServed -> fund."""
    return fund_pool(system, funded_payer, operator, model_id, 4)


@pytest.fixture
def report(distributor, pool):
    """An epoch-1 report (not yet submitted): Alice 5, Bob 3, Carol 1 OPEN."""
    return build_report(distributor, 1, {ALICE: 5 * ONE, BOB: 3 * ONE, CAROL: ONE})


@pytest.fixture
def settled(distributor, oracles, report, stranger):
    oracles.submit(report, distributor, stranger)
    return report


@pytest.fixture
def paid(system, funded_payer, model_id):
    return pay(system, funded_payer, model_id)


@pytest.fixture
def permit_payer(token, governance, stranger):
    """The stranger holds OPEN but has approved nothing; its key signs permits."""
    token.mint(stranger, 10 * PRICE, sender=governance)
    return stranger, Account.from_key(stranger.private_key)


# ----------------------------------------------------------- report replays


def test_replay_on_another_chain_id_is_rejected(distributor, oracles, report, stranger, chain):
    """Signatures made for chain 1 (same contract address, same config digest) do not verify here."""
    assert chain.chain_id != 1
    sigs = oracles.sign(report, distributor, chain_id=1)
    with ape.reverts(NOT_SIGNER):
        distributor.submitReport(*report.args(sigs), sender=stranger)
    oracles.submit(report, distributor, stranger)  # the same report signed for this chain is accepted


def test_replay_on_another_deployment_is_rejected(project, token, distributor, oracles, report, governance, stranger):
    """A second distributor with the very same signer set rejects reports signed for the first one."""
    twin = project.RewardDistributor.deploy(token, oracles.addresses, THRESHOLD, 0, sender=governance)
    token.mint(governance, 10 * ONE, sender=governance)
    token.approve(twin, 10 * ONE, sender=governance)
    twin.fund(10 * ONE, sender=governance)
    sigs = oracles.sign(report, distributor)
    with ape.reverts(NOT_SIGNER):
        twin.submitReport(*report.args(sigs), sender=stranger)
    # even re-signed for the twin's domain, the first deployment's config digest does not verify there
    sigs = oracles.sign(report, twin)
    with ape.reverts(NOT_SIGNER):
        twin.submitReport(*report.args(sigs), sender=stranger)
    assert twin.configDigest() != distributor.configDigest()


def test_replay_of_an_old_epoch_is_rejected(distributor, oracles, report, stranger):
    sigs = oracles.sign(report, distributor)
    distributor.submitReport(*report.args(sigs), sender=stranger)
    with ape.reverts("RewardDistributor: epoch not increasing"):
        distributor.submitReport(*report.args(sigs), sender=stranger)
    oracles.submit(build_report(distributor, 2, {ALICE: 6 * ONE, BOB: 3 * ONE, CAROL: ONE}), distributor, stranger)
    with ape.reverts("RewardDistributor: epoch not increasing"):
        distributor.submitReport(*report.args(sigs), sender=stranger)


def test_replay_with_the_old_config_after_a_signer_rotation_is_rejected(
    distributor, oracles, report, governance, stranger, chain
):
    """Even re-installing the same signers bumps the config version, so old signatures die."""
    sigs = oracles.sign(report, distributor)
    apply_oracle_config(distributor, governance, chain, oracles.addresses, THRESHOLD)
    with ape.reverts(NOT_SIGNER):
        distributor.submitReport(*report.args(sigs), sender=stranger)
    fresh = build_report(distributor, 1, report.tree.amounts)
    assert fresh.message.config_digest != report.message.config_digest
    oracles.submit(fresh, distributor, stranger)


# -------------------------------------------------------------- signatures


def test_high_s_malleable_signature_is_rejected(distributor, oracles, report, stranger, chain):
    sigs = oracles.signatures(report, distributor)
    first = sigs[0]
    s_high = SECP256K1_N - int.from_bytes(first.s, "big")
    v_flipped = 27 + 28 - first.v
    digest = typed_digest(report.message, chain.chain_id, distributor.address)
    # the twin signature is valid for ecrecover: it recovers the very same signer
    assert Account._recover_hash(digest, vrs=(v_flipped, first.r, s_high)) == first.signer
    ordered = sorted(sigs, key=lambda s: int(s.signer, 16))
    args = [(v_flipped, s.r, s_high.to_bytes(32, "big")) if s is first else s.as_tuple() for s in ordered]
    with ape.reverts("ecdsa: invalid signature `s` value"):
        distributor.submitReport(*report.args(args), sender=stranger)


def test_duplicate_signer_is_rejected(distributor, oracles, report, stranger):
    [sig] = oracles.sign(report, distributor, which=(0,))
    with ape.reverts(NOT_ASCENDING):
        distributor.submitReport(*report.args([sig, sig]), sender=stranger)


def test_signers_out_of_order_are_rejected(distributor, oracles, report, stranger):
    sigs = oracles.sign(report, distributor)
    with ape.reverts(NOT_ASCENDING):
        distributor.submitReport(*report.args(sigs[::-1]), sender=stranger)


def test_too_few_signatures_are_rejected(distributor, oracles, report, stranger):
    with ape.reverts(WRONG_COUNT):
        distributor.submitReport(*report.args(oracles.sign(report, distributor, which=(1,))), sender=stranger)
    with ape.reverts(WRONG_COUNT):
        distributor.submitReport(*report.args([]), sender=stranger)


def test_too_many_signatures_are_rejected(distributor, oracles, report, stranger):
    """Exactly m: all three valid signatures are refused when the threshold is two."""
    with ape.reverts(WRONG_COUNT):
        distributor.submitReport(*report.args(oracles.sign(report, distributor, which=(0, 1, 2))), sender=stranger)


def test_non_signer_signature_is_rejected(distributor, oracles, report, stranger):
    outsider = Account.from_key(keccak(text="outsider"))
    keys = [oracles.keys[0], outsider]
    with ape.reverts(NOT_SIGNER):
        distributor.submitReport(*report.args(oracles.sign(report, distributor, keys=keys)), sender=stranger)


def test_governance_cannot_forge_a_report(distributor, oracles, report, governance):
    """The owner's own key is not an oracle signer; it can only veto or rotate."""
    owner_key = Account.from_key(governance.private_key)
    keys = [oracles.keys[0], owner_key]
    with ape.reverts(NOT_SIGNER):
        distributor.submitReport(*report.args(oracles.sign(report, distributor, keys=keys)), sender=governance)


@pytest.mark.parametrize("field", ["rewardsRoot", "totalCumulative", "attributionRoot", "reportURI", "epoch"])
def test_report_field_tampered_after_signing_is_rejected(distributor, oracles, report, stranger, field):
    sigs = oracles.sign(report, distributor)
    args = list(report.args(sigs))
    index = ["epoch", "rewardsRoot", "totalCumulative", "attributionRoot", "reportURI"].index(field)
    args[index] = {
        "epoch": 2,
        "rewardsRoot": build_report(distributor, 1, {ALICE: 9 * ONE}).message.rewards_root,
        "totalCumulative": report.message.total_cumulative + 1,
        "attributionRoot": keccak(text="other"),
        "reportURI": "blob://elsewhere",
    }[field]
    with ape.reverts(NOT_SIGNER):
        distributor.submitReport(*args, sender=stranger)


# ---------------------------------------------------------------- amounts


def test_over_allocation_beyond_the_funded_pool_is_rejected(distributor, token, oracles, pool, governance, stranger):
    """totalCumulative > totalFunded fails, even when OPEN sent by plain transfer would cover it."""
    token.mint(distributor, 100 * ONE, sender=governance)  # not counted: only `fund` counts
    over = build_report(distributor, 1, {ALICE: pool, BOB: 1})
    assert over.message.total_cumulative == distributor.totalFunded() + 1
    with ape.reverts("RewardDistributor: exceeds funded"):
        oracles.submit(over, distributor, stranger)
    oracles.submit(build_report(distributor, 1, {ALICE: pool}), distributor, stranger)  # exactly the pool is fine


def test_decreasing_cumulative_total_is_rejected(distributor, oracles, settled, stranger):
    lower = build_report(distributor, 2, {ALICE: 5 * ONE, BOB: 3 * ONE})
    with ape.reverts("RewardDistributor: cumulative total decreased"):
        oracles.submit(lower, distributor, stranger)


# ------------------------------------------------------------------ claims


def test_double_claim_is_rejected(distributor, token, settled, stranger):
    amount, proof = settled.proof(ALICE)
    distributor.claim(ALICE, amount, proof, sender=stranger)
    with ape.reverts("RewardDistributor: nothing to claim"):
        distributor.claim(ALICE, amount, proof, sender=stranger)
    assert distributor.claimMany([ALICE], [amount], [proof], sender=stranger).return_value == 0  # skipped
    assert token.balanceOf(ALICE) == 5 * ONE


def test_double_claim_inside_one_claim_many_pays_once(distributor, token, settled, stranger):
    amount, proof = settled.proof(ALICE)
    tx = distributor.claimMany([ALICE, ALICE], [amount, amount], [proof, proof], sender=stranger)
    assert tx.return_value == 5 * ONE
    assert len(tx.decode_logs(distributor.Claimed)) == 1
    assert token.balanceOf(ALICE) == 5 * ONE


def test_proof_for_another_account_is_rejected(distributor, settled, stranger):
    amount, proof = settled.proof(ALICE)
    with ape.reverts("RewardDistributor: invalid proof"):
        distributor.claim(BOB, amount, proof, sender=stranger)
    with ape.reverts("RewardDistributor: invalid proof"):
        distributor.claim(stranger, amount, proof, sender=stranger)


def test_inflated_cumulative_amount_is_rejected(distributor, settled, stranger):
    amount, proof = settled.proof(ALICE)
    with ape.reverts("RewardDistributor: invalid proof"):
        distributor.claim(ALICE, amount + 1, proof, sender=stranger)


def test_claim_sent_by_a_third_party_pays_the_account(distributor, token, settled, stranger):
    before = token.balanceOf(stranger)
    amount, proof = settled.proof(BOB)
    tx = distributor.claim(BOB, amount, proof, sender=stranger)
    assert token.balanceOf(BOB) == 3 * ONE
    assert token.balanceOf(stranger) == before
    assert tx.decode_logs(distributor.Claimed)[0].sender == stranger.address


def test_claim_many_by_a_relayer_pays_each_account(distributor, token, settled, stranger):
    proofs = [settled.proof(a) for a in (ALICE, BOB, CAROL)]
    before = token.balanceOf(stranger)
    distributor.claimMany([ALICE, BOB, CAROL], [p[0] for p in proofs], [p[1] for p in proofs], sender=stranger)
    assert [token.balanceOf(a) for a in (ALICE, BOB, CAROL)] == [5 * ONE, 3 * ONE, ONE]
    assert token.balanceOf(stranger) == before


# -------------------------------------------------------------- veto window


@pytest.fixture
def pending(distributor, oracles, settled, governance, stranger, pool, chain):
    """Epoch 1 claimable (Alice 5 OPEN); then, with the delay on, epoch 2 pending (Alice gets the rest of the pool)."""
    apply_claim_delay(distributor, governance, chain, CLAIM_DELAY)
    later = build_report(distributor, 2, {ALICE: pool - 4 * ONE, BOB: 3 * ONE, CAROL: ONE})
    oracles.submit(later, distributor, stranger)
    return later


def test_veto_during_the_delay_discards_the_report(distributor, token, governance, stranger, settled, pending, chain):
    tx = distributor.veto(sender=governance)
    [log] = tx.decode_logs(distributor.ReportVetoed)
    assert (log.epoch, bytes(log.rewardsRoot)) == (2, pending.message.rewards_root)
    assert (distributor.pendingRoot(), distributor.pendingClaimableAt()) == (b"\x00" * 32, 0)
    assert distributor.latestEpoch() == 1  # the floor goes back to the last report standing
    assert distributor.latestTotal() == settled.message.total_cumulative
    chain.pending_timestamp = chain.pending_timestamp + CLAIM_DELAY + 1
    amount, proof = pending.proof(ALICE)
    with ape.reverts("RewardDistributor: invalid proof"):
        distributor.claim(ALICE, amount, proof, sender=stranger)
    amount, proof = settled.proof(ALICE)  # the last claimable root still pays
    distributor.claim(ALICE, amount, proof, sender=stranger)
    assert token.balanceOf(ALICE) == 5 * ONE


def test_claim_before_the_delay_uses_the_old_root(distributor, token, stranger, settled, pending):
    amount, proof = pending.proof(ALICE)
    assert distributor.claimable(ALICE, amount, proof) == 0
    with ape.reverts("RewardDistributor: invalid proof"):
        distributor.claim(ALICE, amount, proof, sender=stranger)


def test_claim_after_the_delay_pays_the_new_root(distributor, token, stranger, pending, pool, chain):
    chain.pending_timestamp = distributor.pendingClaimableAt()
    amount, proof = pending.proof(ALICE)
    distributor.claim(ALICE, amount, proof, sender=stranger)
    assert token.balanceOf(ALICE) == pool - 4 * ONE
    assert distributor.rewardsEpoch() == 2


def test_veto_after_the_delay_is_rejected(distributor, governance, pending, chain):
    chain.pending_timestamp = distributor.pendingClaimableAt()
    chain.mine()
    with ape.reverts("RewardDistributor: nothing pending"):
        distributor.veto(sender=governance)


def test_veto_twice_is_rejected(distributor, governance, pending):
    distributor.veto(sender=governance)
    with ape.reverts("RewardDistributor: nothing pending"):
        distributor.veto(sender=governance)


def test_report_after_a_veto_can_lower_the_total_back(distributor, oracles, governance, stranger, settled, pending):
    vetoed = oracles.sign(pending, distributor)
    distributor.veto(sender=governance)
    with ape.reverts(NOT_SIGNER):  # the veto bumped the config digest: the vetoed signatures are dead
        distributor.submitReport(*pending.args(vetoed), sender=stranger)
    corrected = build_report(distributor, 3, settled.tree.amounts)  # back to the claimable total
    oracles.submit(corrected, distributor, stranger)
    assert (distributor.latestEpoch(), distributor.latestTotal()) == (3, settled.message.total_cumulative)
    below = build_report(distributor, 4, {ALICE: ONE})
    with ape.reverts("RewardDistributor: cumulative total decreased"):
        oracles.submit(below, distributor, stranger)


# ------------------------------------------------------------------ refunds


def test_refund_before_the_service_window_ends_is_rejected(system, stranger, paid, chain):
    with ape.reverts("InferenceMarket: service window still open"):
        system.refund(paid.arg(), sender=stranger)
    chain.pending_timestamp = paid.paidAt + SERVICE_WINDOW  # the last second of the window
    with ape.reverts("InferenceMarket: service window still open"):
        system.refund(paid.arg(), sender=stranger)


def test_refund_after_the_window_pays_the_payer_even_when_a_third_party_calls(
    system, token, funded_payer, stranger, paid, chain
):
    payer_before, stranger_before = token.balanceOf(funded_payer), token.balanceOf(stranger)
    chain.pending_timestamp = paid.paidAt + SERVICE_WINDOW + 1
    tx = system.refund(paid.arg(), sender=stranger)
    [log] = tx.decode_logs(system.InferenceRefunded)
    assert (log.requestId, log.payer, log.fee) == (paid.requestId, funded_payer.address, PRICE)
    assert token.balanceOf(funded_payer) - payer_before == PRICE
    assert token.balanceOf(stranger) == stranger_before
    assert system.requestStatus(paid.requestId) == STATUS_REFUNDED
    with ape.reverts(NOT_AWAITING):
        system.refund(paid.arg(), sender=stranger)


def test_served_request_cannot_be_refunded(system, operator, stranger, paid, chain):
    system.markServed([paid.arg()], sender=operator)
    chain.pending_timestamp = paid.paidAt + SERVICE_WINDOW + 1
    with ape.reverts(NOT_AWAITING):
        system.refund(paid.arg(), sender=stranger)
    assert system.requestStatus(paid.requestId) == STATUS_SERVED


def test_refunded_request_cannot_be_served(system, distributor, operator, stranger, paid, chain):
    chain.pending_timestamp = paid.paidAt + SERVICE_WINDOW + 1
    system.refund(paid.arg(), sender=stranger)
    with ape.reverts("InferenceMarket: service window closed"):
        system.markServed([paid.arg()], sender=operator)
    assert distributor.totalFunded() == 0


FORGERIES = {
    "requestId": lambda r, other: r._replace(requestId=other.requestId),
    "payer": lambda r, other: r._replace(payer=address_of("thief")),
    "modelId": lambda r, other: r._replace(modelId=r.modelId + 1),
    "modelOwner": lambda r, other: r._replace(modelOwner=address_of("thief")),
    "fee": lambda r, other: r._replace(fee=r.fee + 1),
    "paidAt": lambda r, other: r._replace(paidAt=r.paidAt - 1),
    "protocol": lambda r, other: r._replace(split=(0, r.split[1], r.split[2], r.split[3] + r.split[0])),
    "owner": lambda r, other: r._replace(split=(r.split[0], r.split[1] + 1, r.split[2], r.split[3] - 1)),
    "datanetOwners": lambda r, other: r._replace(split=(r.split[0], r.split[1], r.split[2] + 1, r.split[3] - 1)),
    "contributors": lambda r, other: r._replace(split=(r.split[0], r.split[1] - 1, r.split[2], r.split[3] + 1)),
}


@pytest.mark.parametrize("field", list(FORGERIES))
def test_forged_receipt_is_rejected(system, token, funded_payer, operator, stranger, model_id, chain, field):
    """Any one field changed (the fee split moved around included) fails both markServed and refund."""
    first = pay(system, funded_payer, model_id, label="a")
    chain.pending_timestamp = first.paidAt + 7  # so request 2's receipt differs from request 1's in more than its id
    second = pay(system, funded_payer, model_id, label="b")
    forged = FORGERIES[field](first, second)
    assert forged != first
    with ape.reverts(NOT_AWAITING):
        system.markServed([forged.arg()], sender=operator)
    chain.pending_timestamp = first.paidAt + SERVICE_WINDOW + 1
    with ape.reverts(NOT_AWAITING):
        system.refund(forged.arg(), sender=stranger)
    assert system.requestStatus(first.requestId) == STATUS_PAID
    system.refund(first.arg(), sender=stranger)  # the genuine receipt still works


@pytest.mark.parametrize("who", ["stranger", "governance", "model_owner", "funded_payer"])
def test_only_operators_can_mark_served(system, request, paid, who):
    with ape.reverts("InferenceMarket: caller is not an operator"):
        system.markServed([paid.arg()], sender=request.getfixturevalue(who))


def test_model_owner_withdraws_its_earnings_once(system, token, operator, model_owner, stranger, paid):
    system.markServed([paid.arg()], sender=operator)
    with ape.reverts("InferenceMarket: nothing to withdraw"):
        system.withdrawEarnings(sender=stranger)
    before = token.balanceOf(model_owner)
    tx = system.withdrawEarnings(sender=model_owner)
    assert tx.return_value == paid.split[1]
    [log] = tx.decode_logs(system.EarningsWithdrawn)
    assert (log.owner, log.amount) == (model_owner.address, paid.split[1])
    assert token.balanceOf(model_owner) - before == paid.split[1]
    assert system.earnings(model_owner) == 0
    assert token.balanceOf(system) == 0
    with ape.reverts("InferenceMarket: nothing to withdraw"):
        system.withdrawEarnings(sender=model_owner)


def test_unserved_fees_cannot_be_withdrawn_by_the_model_owner(system, model_owner, paid):
    with ape.reverts("InferenceMarket: nothing to withdraw"):
        system.withdrawEarnings(sender=model_owner)


# ------------------------------------------------------------------ payments


def test_pay_with_a_valid_permit_needs_no_prior_approval(system, token, permit_payer, model_id, chain):
    account, key = permit_payer
    deadline = chain.pending_timestamp + 600
    v, r, s = permit_signature(token, key, system.address, 2 * PRICE, 0, deadline, chain.chain_id)
    tx = system.payForInferenceWithPermit(model_id, keccak(text="q"), 2 * PRICE, deadline, v, r, s, sender=account)
    assert tx.return_value == 1
    assert token.nonces(account) == 1
    assert token.balanceOf(account) == 9 * PRICE
    assert token.allowance(account, system) == PRICE  # permit was for maxFee, the price was taken
    [receipt] = receipts_of(system, tx)
    assert system.commitments(1) == receipt.commitment()


def test_front_run_permit_still_pays_when_the_allowance_suffices(
    system, token, permit_payer, funded_payer, model_id, chain
):
    """Someone submits the permit to the token first; the payment then ignores the used permit."""
    account, key = permit_payer
    deadline = chain.pending_timestamp + 600
    v, r, s = permit_signature(token, key, system.address, PRICE, 0, deadline, chain.chain_id)
    token.permit(account, system, PRICE, deadline, v, r, s, sender=funded_payer)  # the front-runner
    tx = system.payForInferenceWithPermit(model_id, keccak(text="q"), PRICE, deadline, v, r, s, sender=account)
    assert tx.return_value == 1
    assert token.balanceOf(account) == 9 * PRICE


def test_bad_permit_without_allowance_is_rejected(system, token, permit_payer, model_id, chain, stranger):
    account, key = permit_payer
    deadline = chain.pending_timestamp + 600
    wrong_key = Account.from_key(keccak(text="not the owner"))
    v, r, s = permit_signature(token, wrong_key, system.address, PRICE, 0, deadline, chain.chain_id)
    with ape.reverts("InferenceMarket: permit failed"):
        system.payForInferenceWithPermit(model_id, keccak(text="q"), PRICE, deadline, v, r, s, sender=account)
    expired = chain.pending_timestamp - 1
    v, r, s = permit_signature(token, key, system.address, PRICE, 0, expired, chain.chain_id)
    with ape.reverts("InferenceMarket: permit failed"):
        system.payForInferenceWithPermit(model_id, keccak(text="q"), PRICE, expired, v, r, s, sender=account)


def test_permit_for_less_than_the_price_cannot_pay(system, token, permit_payer, model_id, chain):
    """maxFee is the permit value; a permit below the price fails on maxFee, not by overdrawing."""
    account, key = permit_payer
    deadline = chain.pending_timestamp + 600
    v, r, s = permit_signature(token, key, system.address, PRICE - 1, 0, deadline, chain.chain_id)
    with ape.reverts("InferenceMarket: price above maxFee"):
        system.payForInferenceWithPermit(model_id, keccak(text="q"), PRICE - 1, deadline, v, r, s, sender=account)


def test_batch_payment_charges_exactly_the_sum_of_prices(
    system, token, model_registry, model_owner, funded_payer, model_id, operator
):
    """Two models at different prices in one batch: one transfer of the exact sum; every receipt serves."""
    cheap = model_registry.register(
        content_hash("b"), content_hash("cheap"), [(1, 1)], PRICE // 4, SPLIT, "", sender=model_owner
    ).return_value
    before = token.balanceOf(funded_payer)
    models = [model_id, cheap, cheap, model_id]
    tx = system.payForInferenceBatch(models, [keccak(text=str(i)) for i in range(4)], [PRICE] * 4, sender=funded_payer)
    assert before - token.balanceOf(funded_payer) == 2 * PRICE + 2 * (PRICE // 4)
    receipts = receipts_of(system, tx)
    assert [r.modelId for r in receipts] == models
    system.markServed([r.arg() for r in receipts], sender=operator)
    assert all(system.requestStatus(r.requestId) == STATUS_SERVED for r in receipts)


def test_max_fee_protects_against_a_price_increase(system, model_registry, model_owner, funded_payer, model_id):
    """The owner raises the price just before the payment lands: the payer's maxFee stops it."""
    model_registry.setPrice(model_id, 100 * PRICE, sender=model_owner)
    with ape.reverts("InferenceMarket: price above maxFee"):
        system.payForInference(model_id, keccak(text="q"), PRICE, sender=funded_payer)
    with ape.reverts("InferenceMarket: price above maxFee"):
        system.payForInferenceBatch([model_id], [keccak(text="q")], [PRICE], sender=funded_payer)


def test_inactive_model_cannot_be_paid(system, token, model_registry, model_owner, funded_payer, model_id, chain):
    model_registry.deactivate(model_id, sender=model_owner)
    with ape.reverts("InferenceMarket: model is inactive"):
        system.payForInference(model_id, keccak(text="q"), PRICE, sender=funded_payer)
    with ape.reverts("InferenceMarket: model is inactive"):
        system.payForInferenceBatch([model_id], [keccak(text="q")], [PRICE], sender=funded_payer)
    token.approve(system, 0, sender=funded_payer)
    key = Account.from_key(funded_payer.private_key)
    deadline = chain.pending_timestamp + 600
    v, r, s = permit_signature(token, key, system.address, PRICE, token.nonces(funded_payer), deadline, chain.chain_id)
    with ape.reverts("InferenceMarket: model is inactive"):
        system.payForInferenceWithPermit(model_id, keccak(text="q"), PRICE, deadline, v, r, s, sender=funded_payer)


def test_inactive_model_receipts_still_settle(system, model_registry, model_owner, operator, paid):
    """Deactivating a model does not strand requests already paid for it."""
    model_registry.deactivate(paid.modelId, sender=model_owner)
    system.markServed([paid.arg()], sender=operator)
    assert system.requestStatus(paid.requestId) == STATUS_SERVED


def test_non_owner_cannot_veto(distributor, stranger, pending):
    with ape.reverts(NOT_OWNER):
        distributor.veto(sender=stranger)
