"""Properties of settlement: the fee split, and a state machine of payments, serves, reports and claims.

The state machine keeps a Python model of the pool (what was funded, each account's latest cumulative amount
and what it claimed), builds every report with the package's ``RewardsTree``, has a random 2 of the 3 oracles
sign it with ``sign_report`` and checks after every step that the distributor's OPEN is exactly what was
funded minus what was claimed and that no account ever received more than its latest cumulative amount.
"""

from __future__ import annotations

from types import SimpleNamespace

import ape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from settlement_helpers import (
    BPS,
    ONE,
    PRICE,
    Receipt,
    address_of,
    build_report,
    receipts_of,
    split_fee,
)

MAX_FEE = (2**256 - 1) // BPS  # above this `fee * bps` overflows (the split reverts)
RECIPIENTS = [address_of(f"contributor-{i}") for i in range(5)]
SIGNER_PAIRS = [(0, 1), (0, 2), (1, 2)]


@st.composite
def splits(draw):
    """Any split a model can have (three basis points summing to 10,000) and any protocol fee up to 100%."""
    owner = draw(st.integers(0, BPS))
    datanets = draw(st.integers(0, BPS - owner))
    protocol = draw(st.integers(0, BPS))
    return owner, BPS - owner - datanets, datanets, protocol


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fee=st.one_of(st.integers(0, 10**6), st.integers(0, 10**30), st.integers(0, MAX_FEE), st.just(MAX_FEE)),
    split=splits(),
)
def test_fee_split_always_sums_to_the_fee(system, fee, split):
    owner_bps, contributors_bps, datanets_bps, protocol_bps = split
    protocol, owner, datanets, contributors = system.splitFee(
        fee, owner_bps, contributors_bps, datanets_bps, protocol_bps
    )
    assert protocol + owner + datanets + contributors == fee
    assert (protocol, owner, datanets, contributors) == split_fee(fee, *split)
    rest = fee - protocol
    assert protocol == fee * protocol_bps // BPS
    # contributors get their rounded-down share plus the dust of the other two roundings (at most 2 wei)
    dust = contributors - rest * contributors_bps // BPS
    assert 0 <= dust <= 2


class SettlementMachine(RuleBasedStateMachine):
    """Random payments (single and batch), serves, 2-of-3 reports and claims (single and batched, by anyone)."""

    env: SimpleNamespace

    def __init__(self):
        super().__init__()
        e = self.env
        self.market, self.distributor, self.token = e.market, e.distributor, e.token
        self.snapshot_id = e.chain.snapshot()
        self.unserved: list[Receipt] = []
        self.funded = self.distributor.totalFunded()
        self.epoch = int(self.distributor.latestEpoch())
        self.report = None  # the latest accepted (claimable) report
        self.cumulative: dict[str, int] = {}  # account -> latest cumulative amount
        self.claimed = {a: 0 for a in RECIPIENTS}
        self.paid = 0

    def teardown(self):
        self.env.chain.restore(self.snapshot_id)

    # ------------------------------------------------------------- market

    @initialize(count=st.integers(1, 4))
    def open_the_pool(self, count):
        """Every run starts with a few served inferences, so there is something to report."""
        self.pay(count, batch=True)
        self.market.markServed([r.arg() for r in self.unserved], sender=self.env.operator)
        self.funded += sum(r.split[2] + r.split[3] for r in self.unserved)
        self.unserved = []

    @rule(count=st.integers(1, 3), batch=st.booleans())
    def pay(self, count, batch):
        e = self.env
        hashes = [(self.paid + i).to_bytes(32, "big") for i in range(count)]
        if batch:
            tx = self.market.payForInferenceBatch([e.model_id] * count, hashes, [PRICE] * count, sender=e.payer)
            self.unserved += receipts_of(self.market, tx)
        else:
            for h in hashes:
                tx = self.market.payForInference(e.model_id, h, PRICE, sender=e.payer)
                self.unserved += receipts_of(self.market, tx)
        self.paid += count

    @precondition(lambda self: self.unserved)
    @rule(data=st.data())
    def serve(self, data):
        picked = data.draw(st.sets(st.sampled_from(range(len(self.unserved))), min_size=1), label="served")
        receipts = [self.unserved[i] for i in sorted(picked)]
        self.market.markServed([r.arg() for r in receipts], sender=self.env.operator)
        self.funded += sum(r.split[2] + r.split[3] for r in receipts)
        self.unserved = [r for i, r in enumerate(self.unserved) if i not in picked]

    # ------------------------------------------------------------ reports

    @precondition(lambda self: self.funded > sum(self.cumulative.values()) or self.cumulative)
    @rule(data=st.data())
    def report_epoch(self, data):
        """Hand a random part of the unallocated pool to random accounts; 2 random oracles sign."""
        available = self.funded - sum(self.cumulative.values())
        percent = data.draw(st.integers(0, 100), label="percent of the unallocated pool")
        spend = max(available * percent // 100, 0 if self.cumulative else 1)
        who = data.draw(st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3, unique=True), label="who")
        weights = data.draw(st.lists(st.integers(1, 100), min_size=len(who), max_size=len(who)), label="weights")
        amounts = dict(self.cumulative)
        given_out = 0
        for account, weight in zip(who, weights, strict=True):
            part = spend * weight // sum(weights)
            amounts[account] = amounts.get(account, 0) + part
            given_out += part
        amounts[who[0]] += spend - given_out  # the rounding remainder
        epoch = self.epoch + data.draw(st.integers(1, 3), label="epoch step")
        report = build_report(self.distributor, epoch, amounts)
        pair = data.draw(st.sampled_from(SIGNER_PAIRS), label="signers")
        self.env.oracles.submit(report, self.distributor, self.env.sender(data), which=pair)
        self.epoch, self.report, self.cumulative = epoch, report, dict(report.tree.amounts)

    @precondition(lambda self: self.funded > 0)
    @rule(extra=st.integers(1, 10 * ONE))
    def over_allocate(self, extra):
        """A report promising more than was ever funded is refused and changes nothing."""
        amounts = dict(self.cumulative)
        amounts[RECIPIENTS[0]] = amounts.get(RECIPIENTS[0], 0) + self.funded - sum(amounts.values()) + extra
        report = build_report(self.distributor, self.epoch + 1, amounts)
        with ape.reverts("RewardDistributor: exceeds funded"):
            self.env.oracles.submit(report, self.distributor, self.env.payer)

    # ------------------------------------------------------------- claims

    @precondition(lambda self: self.report is not None)
    @rule(account=st.sampled_from(RECIPIENTS), data=st.data())
    def claim(self, account, data):
        sender = self.env.sender(data)
        if account not in self.cumulative:
            other = next(iter(self.cumulative))
            amount, proof = self.report.proof(other)
            with ape.reverts("RewardDistributor: invalid proof"):
                self.distributor.claim(account, amount, proof, sender=sender)
            return
        amount, proof = self.report.proof(account)
        owed = amount - self.claimed[account]
        assert self.distributor.claimable(account, amount, proof) == owed
        if owed == 0:
            with ape.reverts("RewardDistributor: nothing to claim"):
                self.distributor.claim(account, amount, proof, sender=sender)
            return
        before = self.token.balanceOf(account)
        tx = self.distributor.claim(account, amount, proof, sender=sender)
        assert tx.return_value == owed
        assert self.token.balanceOf(account) - before == owed
        self.claimed[account] = amount

    @precondition(lambda self: self.report is not None)
    @rule(data=st.data())
    def claim_many(self, data):
        owed = [a for a in self.cumulative if self.cumulative[a] > self.claimed[a]]
        if not owed:
            return
        accounts = data.draw(st.lists(st.sampled_from(owed), min_size=1, unique=True), label="claimMany")
        proofs = [self.report.proof(a) for a in accounts]
        tx = self.distributor.claimMany(
            accounts, [p[0] for p in proofs], [p[1] for p in proofs], sender=self.env.sender(data)
        )
        assert tx.return_value == sum(self.cumulative[a] - self.claimed[a] for a in accounts)
        for a in accounts:
            self.claimed[a] = self.cumulative[a]

    # --------------------------------------------------------- invariants

    @invariant()
    def pool_is_exactly_funded_minus_claimed(self):
        claimed = [self.distributor.claimed(a) for a in RECIPIENTS]
        assert claimed == [self.claimed[a] for a in RECIPIENTS]
        total_funded = self.distributor.totalFunded()
        assert total_funded == self.funded
        balance = self.token.balanceOf(self.distributor)
        assert balance == total_funded - sum(claimed) >= 0

    @invariant()
    def nobody_receives_more_than_their_latest_cumulative_amount(self):
        for a in RECIPIENTS:
            received = self.token.balanceOf(a)  # fresh addresses: everything they hold came from claims
            assert received == self.claimed[a] <= self.cumulative.get(a, 0)

    @invariant()
    def reports_never_exceed_the_pool(self):
        assert self.distributor.latestTotal() == sum(self.cumulative.values()) <= self.funded


def test_settlement_state_machine(
    system, token, distributor, model_id, funded_payer, operator, oracles, accounts, chain
):
    senders = [accounts[i] for i in (2, 3, 5, 6)]  # contributors never send: anyone may claim for them
    SettlementMachine.env = SimpleNamespace(
        market=system,
        token=token,
        distributor=distributor,
        model_id=model_id,
        payer=funded_payer,
        operator=operator,
        oracles=oracles,
        chain=chain,
        sender=lambda data: data.draw(st.sampled_from(senders), label="sender"),
    )
    run_state_machine_as_test(
        SettlementMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
