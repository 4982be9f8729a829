"""RewardDistributor: deployment, oracle config, claim delay, funding, reports, pending roots, claims and views.

Reports are built with the package's ``RewardsTree`` and signed with its ``sign_report`` (2 of the 3 oracle
signers); the attack-shaped tests live in ``test_settlement_security.py``.
"""

from __future__ import annotations

import ape
import pytest
from contract_helpers import MAX_UINT256, ZERO_ADDRESS
from eth_account import Account
from eth_utils import keccak
from settlement_helpers import (
    CLAIM_DELAY,
    MAX_CLAIM_DELAY,
    NOT_OWNER,
    ONE,
    THRESHOLD,
    address_of,
    apply_claim_delay,
    apply_oracle_config,
    build_report,
    config_digest,
    fund_pool,
    typed_digest,
)

ALICE, BOB, CAROL = (address_of(n) for n in ("alice", "bob", "carol"))
ZERO32 = b"\x00" * 32


@pytest.fixture
def pool(system, funded_payer, operator, model_id):
    """OPEN funded into the distributor by serving four inferences (19 OPEN)."""
    return fund_pool(system, funded_payer, operator, model_id, 4)


@pytest.fixture
def settled(distributor, oracles, pool, stranger):
    """Epoch 1 reported (claimable at once): Alice 5, Bob 3, Carol 1 OPEN."""
    report = build_report(distributor, 1, {ALICE: 5 * ONE, BOB: 3 * ONE, CAROL: ONE})
    oracles.submit(report, distributor, stranger)
    return report


@pytest.fixture
def delayed(distributor, governance, chain):
    apply_claim_delay(distributor, governance, chain, CLAIM_DELAY)
    return distributor


def new_key(label: str):
    return Account.from_key(keccak(text=f"new-oracle:{label}"))


# ---------------------------------------------------------------- deployment


def test_deployment_state(distributor, token, oracle_keys, governance, chain):
    signers = [k.address for k in oracle_keys]
    assert distributor.token() == token.address
    assert distributor.owner() == governance.address
    assert distributor.getSigners() == signers
    assert [distributor.signers(i) for i in range(3)] == signers
    assert all(distributor.isSigner(s) for s in signers)
    assert not distributor.isSigner(governance)
    assert distributor.threshold() == THRESHOLD
    assert distributor.configVersion() == 1
    assert distributor.configDigest() == config_digest(chain.chain_id, distributor.address, 1, signers, THRESHOLD)
    assert distributor.claimDelay() == 0
    assert distributor.totalFunded() == 0
    assert (distributor.latestEpoch(), distributor.latestTotal()) == (0, 0)
    assert (distributor.rewardsEpoch(), distributor.rewardsTotal(), distributor.rewardsRoot()) == (0, 0, ZERO32)
    assert (distributor.pendingEpoch(), distributor.pendingRoot(), distributor.pendingClaimableAt()) == (0, ZERO32, 0)
    fields, name, version, chain_id, verifying, salt, extensions = distributor.eip712Domain()
    assert (bytes(fields), name, version, chain_id, verifying) == (
        b"\x0f",
        "AttributionRewards",
        "1",
        chain.chain_id,
        distributor.address,
    )
    assert (bytes(salt), list(extensions)) == (ZERO32, [])


@pytest.mark.parametrize(
    ("signers", "threshold", "delay", "message"),
    [
        ("abc", 0, 0, "RewardDistributor: bad threshold"),
        ("abc", 4, 0, "RewardDistributor: bad threshold"),
        ("", 1, 0, "RewardDistributor: bad threshold"),
        ("a0", 1, 0, "RewardDistributor: zero signer"),
        ("aba", 2, 0, "RewardDistributor: duplicate signer"),
        ("abc", 2, MAX_CLAIM_DELAY + 1, "RewardDistributor: delay too long"),
    ],
)
def test_constructor_rejects_bad_configs(project, token, governance, signers, threshold, delay, message):
    keys = {c: (ZERO_ADDRESS if c == "0" else new_key(c).address) for c in signers}
    with ape.reverts(message):
        project.RewardDistributor.deploy(token, [keys[c] for c in signers], threshold, delay, sender=governance)


# -------------------------------------------------------------- oracle config


def test_set_oracle_config_is_governance_only(distributor, oracle_keys, stranger):
    with ape.reverts(NOT_OWNER):
        distributor.proposeOracleConfig([k.address for k in oracle_keys], 1, sender=stranger)
    with ape.reverts(NOT_OWNER):
        distributor.cancelOracleConfig(sender=stranger)


@pytest.mark.parametrize(
    ("signers", "threshold", "message"),
    [
        ("ab", 0, "RewardDistributor: bad threshold"),
        ("ab", 3, "RewardDistributor: bad threshold"),
        ("a0", 1, "RewardDistributor: zero signer"),
        ("bb", 1, "RewardDistributor: duplicate signer"),
    ],
)
def test_set_oracle_config_rejects_bad_configs(distributor, governance, signers, threshold, message):
    keys = {c: (ZERO_ADDRESS if c == "0" else new_key(c).address) for c in signers}
    with ape.reverts(message):
        distributor.proposeOracleConfig([keys[c] for c in signers], threshold, sender=governance)


def test_set_oracle_config_replaces_the_signer_set(
    distributor, oracles, oracle_keys, governance, stranger, pool, chain
):
    kept, fresh = oracle_keys[2], new_key("d")
    signers = sorted([kept.address, fresh.address], key=lambda a: int(a, 16))
    tx = apply_oracle_config(distributor, governance, chain, signers, 2)
    digest = config_digest(chain.chain_id, distributor.address, 2, signers, 2)
    [log] = tx.decode_logs(distributor.OracleConfigSet)
    assert (log.configVersion, bytes(log.configDigest), list(log.signers), log.threshold) == (2, digest, signers, 2)
    assert distributor.configVersion() == 2
    assert distributor.configDigest() == digest
    assert distributor.getSigners() == signers
    assert not distributor.isSigner(oracle_keys[0].address) and not distributor.isSigner(oracle_keys[1].address)
    assert distributor.isSigner(kept.address) and distributor.isSigner(fresh.address)
    # the new set signs under the new digest; the removed signers no longer count
    report = build_report(distributor, 1, {ALICE: ONE})
    with ape.reverts("RewardDistributor: not an oracle signer"):
        oracles.submit(report, distributor, stranger, which=(0, 1))
    distributor.submitReport(
        *report.args(oracles.sign(report, distributor, (0, 1), keys=[kept, fresh])), sender=stranger
    )
    assert distributor.latestEpoch() == 1


def test_the_same_signer_set_can_be_set_again(distributor, oracle_keys, governance, chain):
    signers = [k.address for k in oracle_keys]
    apply_oracle_config(distributor, governance, chain, signers, 3)
    assert distributor.getSigners() == signers and distributor.threshold() == 3
    assert all(distributor.isSigner(s) for s in signers)


# ---------------------------------------------------------------- claim delay


def test_set_claim_delay_is_governance_only(distributor, stranger):
    with ape.reverts(NOT_OWNER):
        distributor.proposeClaimDelay(1, sender=stranger)
    with ape.reverts(NOT_OWNER):
        distributor.cancelClaimDelay(sender=stranger)


def test_set_claim_delay_is_bounded(distributor, governance, chain):
    with ape.reverts("RewardDistributor: delay too long"):
        distributor.proposeClaimDelay(MAX_CLAIM_DELAY + 1, sender=governance)
    tx = apply_claim_delay(distributor, governance, chain, MAX_CLAIM_DELAY)
    assert tx.decode_logs(distributor.ClaimDelaySet)[0].claimDelay == MAX_CLAIM_DELAY
    assert distributor.claimDelay() == MAX_CLAIM_DELAY


# -------------------------------------------------------------------- funding


def test_fund_rejects_zero(distributor, stranger):
    with ape.reverts("RewardDistributor: zero amount"):
        distributor.fund(0, sender=stranger)


def test_anyone_can_fund_the_pool(distributor, token, governance, stranger):
    token.mint(stranger, 8 * ONE, sender=governance)
    token.approve(distributor, MAX_UINT256, sender=stranger)
    tx = distributor.fund(7 * ONE, sender=stranger)
    [log] = tx.decode_logs(distributor.Funded)
    assert (log.funder, log.amount, log.totalFunded) == (stranger.address, 7 * ONE, 7 * ONE)
    distributor.fund(ONE, sender=stranger)
    assert distributor.totalFunded() == 8 * ONE
    assert token.balanceOf(distributor) == 8 * ONE


def test_fund_needs_an_allowance(distributor, token, governance, stranger):
    token.mint(stranger, ONE, sender=governance)
    with ape.reverts("erc20: insufficient allowance"):
        distributor.fund(ONE, sender=stranger)


# -------------------------------------------------------------------- reports


def test_submit_report_makes_the_root_claimable(distributor, oracles, stranger, pool, chain):
    report = build_report(distributor, 3, {ALICE: 5 * ONE, BOB: 3 * ONE}, uri="blob://r3")
    tx = oracles.submit(report, distributor, stranger, which=(2, 0))
    [log] = tx.decode_logs(distributor.ReportSubmitted)
    m = report.message
    assert (log.epoch, bytes(log.rewardsRoot), log.totalCumulative) == (3, m.rewards_root, 8 * ONE)
    assert (bytes(log.attributionRoot), log.reportURI, log.transmitter) == (m.attribution_root, "blob://r3", stranger)
    assert log.claimableAt == chain.blocks[tx.block_number].timestamp
    assert (distributor.latestEpoch(), distributor.latestTotal()) == (3, 8 * ONE)
    assert (distributor.rewardsEpoch(), distributor.rewardsTotal()) == (3, 8 * ONE)
    assert distributor.rewardsRoot() == m.rewards_root
    assert distributor.pendingClaimableAt() == 0


def test_report_digest_matches_the_python_typed_data(distributor, chain):
    report = build_report(distributor, 7, {ALICE: 1, BOB: 2}, uri="blob://r7")
    m = report.message
    onchain = distributor.reportDigest(m.epoch, m.rewards_root, m.total_cumulative, m.attribution_root, m.report_uri)
    assert onchain == typed_digest(m, chain.chain_id, distributor.address)


def test_every_signer_pair_can_submit(distributor, oracles, stranger, pool):
    for epoch, pair in enumerate([(0, 1), (0, 2), (1, 2)], start=1):
        oracles.submit(build_report(distributor, epoch, {ALICE: epoch * ONE}), distributor, stranger, which=pair)
    assert (distributor.latestEpoch(), distributor.latestTotal()) == (3, 3 * ONE)


def test_epoch_zero_is_rejected(distributor, oracles, stranger, pool):
    with ape.reverts("RewardDistributor: epoch not increasing"):
        oracles.submit(build_report(distributor, 0, {ALICE: ONE}), distributor, stranger)


def test_empty_root_is_rejected(distributor, oracles, stranger, pool):
    report = build_report(distributor, 1, {})
    assert report.message.rewards_root == ZERO32
    with ape.reverts("RewardDistributor: empty root"):
        oracles.submit(report, distributor, stranger)


def test_a_signature_that_recovers_no_address_is_rejected(distributor, oracles, stranger, pool):
    report = build_report(distributor, 1, {ALICE: ONE})
    sigs = oracles.sign(report, distributor)
    sigs[0] = (sigs[0][0], ZERO32, sigs[0][2])  # r = 0: ecrecover returns the zero address
    with ape.reverts("ecdsa: invalid signature"):
        distributor.submitReport(*report.args(sigs), sender=stranger)


def test_epochs_may_skip(distributor, oracles, stranger, pool):
    oracles.submit(build_report(distributor, 5, {ALICE: ONE}), distributor, stranger)
    oracles.submit(build_report(distributor, 9, {ALICE: ONE}), distributor, stranger)  # same total is fine
    assert (distributor.latestEpoch(), distributor.latestTotal()) == (9, ONE)


# ---------------------------------------------------------------- pending roots


def test_with_a_delay_a_report_waits_as_pending(delayed, oracles, stranger, pool, chain):
    distributor = delayed
    report = build_report(distributor, 1, {ALICE: 2 * ONE})
    tx = oracles.submit(report, distributor, stranger)
    claimable_at = chain.blocks[tx.block_number].timestamp + CLAIM_DELAY
    assert tx.decode_logs(distributor.ReportSubmitted)[0].claimableAt == claimable_at
    assert (distributor.pendingRoot(), distributor.pendingEpoch()) == (report.message.rewards_root, 1)
    assert distributor.pendingClaimableAt() == claimable_at
    assert (distributor.latestEpoch(), distributor.latestTotal()) == (1, 2 * ONE)
    assert (distributor.rewardsEpoch(), distributor.rewardsRoot()) == (0, ZERO32)
    amount, proof = report.proof(ALICE)
    assert distributor.claimable(ALICE, amount, proof) == 0
    with ape.reverts("RewardDistributor: invalid proof"):
        distributor.claim(ALICE, amount, proof, sender=stranger)
    chain.pending_timestamp = claimable_at
    chain.mine()
    assert distributor.claimable(ALICE, amount, proof) == amount  # the view already sees the matured root
    distributor.claim(ALICE, amount, proof, sender=stranger)  # first claim promotes it
    assert (distributor.rewardsEpoch(), distributor.rewardsTotal()) == (1, 2 * ONE)
    assert distributor.rewardsRoot() == report.message.rewards_root
    assert (distributor.pendingRoot(), distributor.pendingEpoch(), distributor.pendingClaimableAt()) == (ZERO32, 0, 0)


def test_a_matured_pending_report_is_promoted_by_the_next_report(delayed, oracles, stranger, pool, chain):
    distributor = delayed
    first = build_report(distributor, 1, {ALICE: ONE})
    oracles.submit(first, distributor, stranger)
    chain.pending_timestamp = distributor.pendingClaimableAt()
    second = build_report(distributor, 2, {ALICE: 2 * ONE})
    oracles.submit(second, distributor, stranger)
    assert (distributor.rewardsRoot(), distributor.rewardsEpoch()) == (first.message.rewards_root, 1)
    assert (distributor.pendingRoot(), distributor.pendingEpoch()) == (second.message.rewards_root, 2)


def test_a_newer_report_queues_behind_an_unmatured_pending_one(delayed, oracles, stranger, pool, chain):
    distributor = delayed
    first = build_report(distributor, 1, {ALICE: ONE})
    tx1 = oracles.submit(first, distributor, stranger)
    second = build_report(distributor, 2, {ALICE: 2 * ONE})
    tx2 = oracles.submit(second, distributor, stranger)
    first_at = chain.blocks[tx1.block_number].timestamp + CLAIM_DELAY
    second_at = chain.blocks[tx2.block_number].timestamp + CLAIM_DELAY
    assert distributor.pendingCount() == 2
    assert (distributor.pendingRoot(), distributor.pendingEpoch()) == (first.message.rewards_root, 1)
    assert distributor.pendingClaimableAt() == first_at
    assert distributor.pendingReport(1) == (2, second.message.rewards_root, 2 * ONE, second_at)
    assert distributor.rewardsEpoch() == 0


def test_turning_the_delay_off_never_lets_a_stale_pending_root_replace_a_newer_one(
    delayed, oracles, governance, stranger, pool, chain, token
):
    """A report pending under the old delay is never promoted over a later report: the later one queues behind it."""
    distributor = delayed
    distributor.proposeClaimDelay(0, sender=governance)
    chain.pending_timestamp = chain.pending_timestamp + 100
    old = build_report(distributor, 1, {ALICE: ONE})
    oracles.submit(old, distributor, stranger)  # pending until after the delay cut lands
    old_at = distributor.pendingClaimableAt()
    assert old_at > distributor.queuedClaimDelayAt() + 50
    chain.pending_timestamp = distributor.queuedClaimDelayAt()
    distributor.applyClaimDelay(sender=governance)
    new = build_report(distributor, 2, {ALICE: ONE, BOB: 2 * ONE})
    tx = oracles.submit(new, distributor, stranger)
    assert tx.decode_logs(distributor.ReportSubmitted)[0].claimableAt == old_at
    chain.pending_timestamp = old_at + 1
    amount, proof = new.proof(BOB)
    distributor.claim(BOB, amount, proof, sender=stranger)
    assert token.balanceOf(BOB) == 2 * ONE
    assert (distributor.rewardsEpoch(), distributor.rewardsRoot()) == (2, new.message.rewards_root)
    assert (distributor.pendingCount(), distributor.pendingEpoch(), distributor.pendingClaimableAt()) == (0, 0, 0)


def test_veto_is_governance_only(delayed, oracles, stranger, pool):
    oracles.submit(build_report(delayed, 1, {ALICE: ONE}), delayed, stranger)
    with ape.reverts(NOT_OWNER):
        delayed.veto(sender=stranger)


def test_veto_with_nothing_pending_is_rejected(distributor, governance, settled):
    with ape.reverts("RewardDistributor: nothing pending"):
        distributor.veto(sender=governance)


# --------------------------------------------------------------------- claims


def test_claim_pays_the_cumulative_amount(distributor, token, stranger, settled):
    amount, proof = settled.proof(ALICE)
    assert distributor.claimable(ALICE, amount, proof) == 5 * ONE
    tx = distributor.claim(ALICE, amount, proof, sender=stranger)
    assert tx.return_value == 5 * ONE
    [log] = tx.decode_logs(distributor.Claimed)
    assert (log.account, log.amount, log.cumulativeAmount, log.sender) == (ALICE, 5 * ONE, 5 * ONE, stranger.address)
    assert token.balanceOf(ALICE) == 5 * ONE
    assert distributor.claimed(ALICE) == 5 * ONE
    assert distributor.claimable(ALICE, amount, proof) == 0


def test_a_later_epoch_pays_only_the_difference(distributor, token, oracles, stranger, settled):
    amount, proof = settled.proof(ALICE)
    distributor.claim(ALICE, amount, proof, sender=stranger)
    second = build_report(distributor, 2, {ALICE: 7 * ONE, BOB: 3 * ONE, CAROL: ONE})
    oracles.submit(second, distributor, stranger)
    amount, proof = second.proof(ALICE)
    assert distributor.claimable(ALICE, amount, proof) == 2 * ONE
    assert distributor.claim(ALICE, amount, proof, sender=stranger).return_value == 2 * ONE
    assert token.balanceOf(ALICE) == 7 * ONE


def test_one_claim_collects_every_epoch(distributor, token, oracles, stranger, settled):
    oracles.submit(build_report(distributor, 2, {ALICE: 6 * ONE, BOB: 3 * ONE, CAROL: ONE}), distributor, stranger)
    third = build_report(distributor, 3, {ALICE: 8 * ONE, BOB: 3 * ONE, CAROL: ONE})
    oracles.submit(third, distributor, stranger)
    amount, proof = third.proof(ALICE)
    distributor.claim(ALICE, amount, proof, sender=stranger)
    assert token.balanceOf(ALICE) == 8 * ONE


def test_claimable_is_zero_for_a_bad_proof(distributor, settled):
    amount, proof = settled.proof(ALICE)
    assert distributor.claimable(ALICE, amount + 1, proof) == 0
    assert distributor.claimable(BOB, amount, proof) == 0


def test_claim_many_pays_every_account(distributor, token, stranger, settled):
    accounts = [ALICE, BOB, CAROL]
    proofs = [settled.proof(a) for a in accounts]
    tx = distributor.claimMany(accounts, [p[0] for p in proofs], [p[1] for p in proofs], sender=stranger)
    assert tx.return_value == 9 * ONE
    assert [log.account for log in tx.decode_logs(distributor.Claimed)] == accounts
    assert [token.balanceOf(a) for a in accounts] == [5 * ONE, 3 * ONE, ONE]
    assert token.balanceOf(distributor) == distributor.totalFunded() - 9 * ONE


@pytest.mark.parametrize("short", ["cumulativeAmounts", "proofs", "accounts"])
def test_claim_many_rejects_lists_of_different_lengths(distributor, stranger, settled, short):
    proofs = [settled.proof(a) for a in (ALICE, BOB)]
    lists = {"accounts": [ALICE, BOB], "cumulativeAmounts": [p[0] for p in proofs], "proofs": [p[1] for p in proofs]}
    lists[short] = lists[short][:1]
    with ape.reverts("RewardDistributor: length mismatch"):
        distributor.claimMany(lists["accounts"], lists["cumulativeAmounts"], lists["proofs"], sender=stranger)


def test_claim_many_is_all_or_nothing(distributor, token, stranger, settled):
    (a, pa), (b, pb) = settled.proof(ALICE), settled.proof(BOB)
    with ape.reverts("RewardDistributor: invalid proof"):
        distributor.claimMany([ALICE, BOB], [a, b + 1], [pa, pb], sender=stranger)
    assert token.balanceOf(ALICE) == 0


def test_claim_many_with_no_accounts_pays_nothing(distributor, stranger, settled):
    assert distributor.claimMany([], [], [], sender=stranger).return_value == 0


def test_claim_promotes_a_matured_root_inside_claim_many(delayed, oracles, stranger, pool, chain, token):
    report = build_report(delayed, 1, {ALICE: ONE, BOB: 2 * ONE})
    oracles.submit(report, delayed, stranger)
    chain.pending_timestamp = delayed.pendingClaimableAt()
    proofs = [report.proof(a) for a in (ALICE, BOB)]
    delayed.claimMany([ALICE, BOB], [p[0] for p in proofs], [p[1] for p in proofs], sender=stranger)
    assert (token.balanceOf(ALICE), token.balanceOf(BOB)) == (ONE, 2 * ONE)
    assert delayed.rewardsEpoch() == 1


def test_ownership_transfer_and_renounce(distributor, governance, stranger):
    with ape.reverts("ownable: new owner is the zero address"):
        distributor.transfer_ownership(ZERO_ADDRESS, sender=governance)
    distributor.transfer_ownership(stranger, sender=governance)
    assert distributor.owner() == stranger.address
    with ape.reverts(NOT_OWNER):
        distributor.proposeClaimDelay(1, sender=governance)
    distributor.renounce_ownership(sender=stranger)
    assert distributor.owner() == ZERO_ADDRESS
    with ape.reverts(NOT_OWNER):
        distributor.veto(sender=stranger)
