"""Attacks on the RewardDistributor from the money-safety review (issue 13), one test per attack.

Governance taking the pool by rotating the oracle set to itself (5), claims starved by reports faster than the
delay (6), an epoch jump that locks the honest set out (7), a tree whose leaves add up to more than its total (8)
and a front-run claim reverting a relayer's batch (9).
"""

from __future__ import annotations

import ape
import pytest
from eth_account import Account
from settlement_helpers import (
    CLAIM_DELAY,
    ONE,
    address_of,
    apply_claim_delay,
    build_report,
    fund_pool,
)

ALICE, BOB, CAROL = (address_of(n) for n in ("alice", "bob", "carol"))
DAY = 86_400


@pytest.fixture
def pool(system, funded_payer, operator, model_id):
    """19 OPEN funded into the distributor through InferenceMarket.markServed -> fund."""
    return fund_pool(system, funded_payer, operator, model_id, 4)


@pytest.fixture
def governance_key(governance):
    return Account.from_key(governance.private_key)


def test_attack_governance_rotates_the_oracle_set_to_itself_and_drains_the_pool(
    distributor, oracles, token, governance, governance_key, stranger, pool, chain
):
    """Rotation is a queued change: visible at once, applicable only after max(claimDelay, 1 day), by which time
    every root the honest set reported has matured and been claimable."""
    honest = build_report(distributor, 1, {ALICE: 5 * ONE, BOB: 3 * ONE})
    oracles.submit(honest, distributor, stranger)
    tx = distributor.proposeOracleConfig([governance_key.address], 1, sender=governance)
    [queued] = tx.decode_logs(distributor.OracleConfigQueued)
    proposed_at = chain.blocks[tx.block_number].timestamp
    assert (list(queued.signers), queued.threshold, queued.executableAt) == ([governance.address], 1, proposed_at + DAY)
    assert distributor.getQueuedSigners() == [governance.address]
    assert distributor.queuedConfigAt() == proposed_at + DAY
    with ape.reverts("RewardDistributor: config change still timelocked"):
        distributor.applyOracleConfig(sender=governance)
    # governance cannot sign a report for itself while the honest set is in charge
    theft = build_report(distributor, 2, {governance_key.address: pool})
    with ape.reverts("RewardDistributor: wrong number of signatures"):
        distributor.submitReport(
            *theft.args(oracles.sign(theft, distributor, (0,), keys=[governance_key])), sender=governance
        )
    # meanwhile everyone claims what the honest set reported
    for account in (ALICE, BOB):
        amount, proof = honest.proof(account)
        distributor.claim(account, amount, proof, sender=stranger)
    assert (token.balanceOf(ALICE), token.balanceOf(BOB)) == (5 * ONE, 3 * ONE)
    chain.pending_timestamp = proposed_at + DAY
    distributor.applyOracleConfig(sender=stranger)  # anyone may apply a matured change
    assert distributor.getSigners() == [governance.address] and distributor.threshold() == 1


def test_attack_governance_cuts_the_claim_delay_to_skip_the_veto_window(
    distributor, governance, stranger, chain, oracles, pool
):
    """Claim-delay changes wait at least the current claim delay: a cut cannot shorten a window already promised."""
    apply_claim_delay(distributor, governance, chain, 3 * DAY)
    tx = distributor.proposeClaimDelay(0, sender=governance)
    [queued] = tx.decode_logs(distributor.ClaimDelayQueued)
    assert queued.executableAt == chain.blocks[tx.block_number].timestamp + 3 * DAY  # max(claimDelay, 1 day)
    assert distributor.governanceDelay() == 3 * DAY
    chain.pending_timestamp = queued.executableAt - 10
    with ape.reverts("RewardDistributor: claim delay change still timelocked"):
        distributor.applyClaimDelay(sender=stranger)
    distributor.cancelClaimDelay(sender=governance)
    with ape.reverts("RewardDistributor: no claim delay queued"):
        distributor.applyClaimDelay(sender=stranger)
    assert distributor.claimDelay() == 3 * DAY


def test_attack_reports_faster_than_the_delay_starve_claims_forever(
    distributor, oracles, token, governance, stranger, pool, chain
):
    """Pending roots mature in order: each report keeps its own claimableAt, later ones queue behind."""
    apply_claim_delay(distributor, governance, chain, CLAIM_DELAY)
    reports, times = [], []
    for epoch in range(1, 6):  # a report every quarter of the delay: each would have restarted the old delay
        report = build_report(distributor, epoch, {ALICE: epoch * ONE})
        tx = oracles.submit(report, distributor, stranger)
        reports.append(report)
        times.append(tx.decode_logs(distributor.ReportSubmitted)[0].claimableAt)
        chain.pending_timestamp = chain.pending_timestamp + CLAIM_DELAY // 4
    assert times == sorted(times) and len(set(times)) == 5
    chain.pending_timestamp = times[1]  # the first two reports matured on time, the third not yet
    chain.mine()
    amount, proof = reports[1].proof(ALICE)
    assert distributor.claimable(ALICE, amount, proof) == 2 * ONE
    distributor.claim(ALICE, amount, proof, sender=stranger)
    assert token.balanceOf(ALICE) == 2 * ONE
    assert (distributor.rewardsEpoch(), distributor.pendingCount(), distributor.pendingEpoch()) == (2, 3, 3)
    chain.pending_timestamp = times[-1]
    amount, proof = reports[-1].proof(ALICE)
    distributor.claim(ALICE, amount, proof, sender=stranger)
    assert token.balanceOf(ALICE) == 5 * ONE
    assert distributor.rewardsEpoch() == 5 and distributor.pendingCount() == 0


def test_attack_colluding_quorum_jumps_the_epoch_to_the_maximum(
    distributor, oracles, governance, stranger, pool, chain
):
    """2**64-1 is refused (epochs never run ahead of the clock); a jump to the limit is undone by a veto."""
    with ape.reverts("RewardDistributor: epoch too far ahead"):
        oracles.submit(build_report(distributor, 2**64 - 1, {ALICE: ONE}), distributor, stranger)
    apply_claim_delay(distributor, governance, chain, CLAIM_DELAY)
    oracles.submit(build_report(distributor, 1, {ALICE: ONE}), distributor, stranger)
    limit = chain.pending_timestamp
    jump = build_report(distributor, limit, {ALICE: 2 * ONE})
    oracles.submit(jump, distributor, stranger)
    assert distributor.latestEpoch() == limit
    tx = distributor.veto(limit, sender=governance)
    assert [log.epoch for log in tx.decode_logs(distributor.ReportVetoed)] == [limit]
    assert distributor.latestEpoch() == 1  # the floor is usable again
    oracles.submit(build_report(distributor, 2, {ALICE: 2 * ONE}), distributor, stranger)
    assert distributor.latestEpoch() == 2


def test_attack_over_allocating_tree_pays_out_more_than_its_total(
    distributor, oracles, token, governance, stranger, pool
):
    """Leaves adding up to more than totalCumulative pay out at most totalCumulative, never donated OPEN."""
    token.mint(stranger, 100 * ONE, sender=governance)
    token.transfer(distributor, 100 * ONE, sender=stranger)  # a plain transfer, not funded
    report = build_report(distributor, 1, {ALICE: 10 * ONE, BOB: 10 * ONE}, total=12 * ONE)
    oracles.submit(report, distributor, stranger)
    amount, proof = report.proof(ALICE)
    distributor.claim(ALICE, amount, proof, sender=stranger)
    amount, proof = report.proof(BOB)
    assert distributor.claimable(BOB, amount, proof) == 2 * ONE
    with ape.reverts("RewardDistributor: exceeds the claimable total"):
        distributor.claim(BOB, amount, proof, sender=stranger)
    assert distributor.totalClaimed() == 10 * ONE <= distributor.rewardsTotal()
    assert token.balanceOf(BOB) == 0


def test_attack_front_run_claim_reverts_a_relayers_claim_many(distributor, oracles, token, stranger, pool, accounts):
    report = build_report(distributor, 1, {ALICE: 5 * ONE, BOB: 3 * ONE, CAROL: ONE})
    oracles.submit(report, distributor, stranger)
    proofs = [report.proof(a) for a in (ALICE, BOB, CAROL)]
    distributor.claim(BOB, *proofs[1], sender=accounts[2])  # someone claims for Bob first
    tx = distributor.claimMany([ALICE, BOB, CAROL], [p[0] for p in proofs], [p[1] for p in proofs], sender=stranger)
    assert tx.return_value == 6 * ONE
    assert [log.account for log in tx.decode_logs(distributor.Claimed)] == [ALICE, CAROL]
    assert [token.balanceOf(a) for a in (ALICE, BOB, CAROL)] == [5 * ONE, 3 * ONE, ONE]


def test_veto_of_a_middle_epoch_discards_it_and_every_later_pending_report(
    distributor, oracles, governance, stranger, pool, chain
):
    apply_claim_delay(distributor, governance, chain, CLAIM_DELAY)
    for epoch in (1, 2, 3):
        oracles.submit(build_report(distributor, epoch, {ALICE: epoch * ONE}), distributor, stranger)
    tx = distributor.veto(2, sender=governance)
    assert [log.epoch for log in tx.decode_logs(distributor.ReportVetoed)] == [2, 3]
    assert len(tx.decode_logs(distributor.OracleConfigSet)) == 1  # the digest moved on
    assert (distributor.pendingCount(), distributor.latestEpoch(), distributor.latestTotal()) == (1, 1, ONE)
    with ape.reverts("RewardDistributor: epoch not pending"):
        distributor.veto(7, sender=governance)
