"""A state machine over the RewardDistributor alone: funding, honest and over-allocating reports, time, vetoes,
oracle-set rotations and claim-delay changes (both through the governance timelock), claims and relayed batches.

The Python model keeps the reports still standing (epoch, tree, total, claimableAt) and what each account
claimed. Invariants after every step: the OPEN claimed never exceeds what was funded nor the claimable total;
nobody holds more than their cumulative amount in the latest claimable tree; and a report can always follow a
veto or a rotation (those rules submit one straight away and require it to be accepted). The chain is
snapshotted before and restored after every example.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from eth_account import Account
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from settlement_helpers import ONE, address_of, build_report

RECIPIENTS = [address_of(f"machine-{i}") for i in range(4)]
EXTRA_KEY = Account.from_key(keccak(text="machine-oracle-extra"))
DELAYS = [0, 3_600, 86_400]


@dataclass
class Standing:
    epoch: int
    report: object
    total: int
    claimable_at: int


class DistributorMachine(RuleBasedStateMachine):
    env: SimpleNamespace

    def __init__(self):
        super().__init__()
        e = self.env
        self.d, self.token, self.chain, self.gov = e.distributor, e.token, e.chain, e.governance
        self.snapshot_id = self.chain.snapshot()
        self.keys = list(e.oracles.keys)
        self.threshold = 2
        self.funded = 0
        self.standing: list[Standing] = []
        self.claimed = {a: 0 for a in RECIPIENTS}
        self.now = self._head_time()

    def teardown(self):
        self.chain.restore(self.snapshot_id)

    # ----------------------------------------------------------- helpers

    def _head_time(self) -> int:
        return int(self.chain.blocks.head.timestamp)

    def _tick(self, seconds: int = 1) -> int:
        """Fix the next block's timestamp (so the model knows which reports have matured)."""
        self.now = max(self.now, self._head_time()) + seconds
        self.chain.pending_timestamp = self.now
        return self.now

    def _sign_and_submit(self, report):
        signer_keys = sorted(self.keys[: self.threshold], key=lambda k: int(k.address, 16))
        sigs = self.env.oracles.sign(report, self.d, range(self.threshold), keys=signer_keys)
        return self.d.submitReport(*report.args(sigs), sender=self.env.sender)

    def _claimable(self) -> Standing | None:
        matured = [s for s in self.standing if s.claimable_at <= self.now]
        return matured[-1] if matured else None

    def _report(self, extra: int, over: bool):
        """A report on top of the newest standing one, handing out ``extra`` more (leaves over ``total`` if over)."""
        base = dict(self.standing[-1].report.tree.amounts) if self.standing else {}
        base_total = self.standing[-1].total if self.standing else 0
        epoch = int(self.d.latestEpoch()) + 1
        if not base and extra == 0:
            extra = 1  # an empty tree has no root; the pool holds at least 1 OPEN by now
        amounts = dict(base)
        target = RECIPIENTS[epoch % len(RECIPIENTS)]
        amounts[target] = amounts.get(target, 0) + extra
        total = base_total + extra
        if over:
            amounts[RECIPIENTS[(epoch + 1) % len(RECIPIENTS)]] = (
                amounts.get(RECIPIENTS[(epoch + 1) % len(RECIPIENTS)], 0) + 3 * ONE
            )
        report = build_report(self.d, epoch, amounts, total=total)
        now = self._tick()
        tx = self._sign_and_submit(report)
        at = tx.decode_logs(self.d.ReportSubmitted)[0].claimableAt
        assert at >= now and (not self.standing or at >= self.standing[-1].claimable_at)
        self.standing.append(Standing(epoch, report, total, at))

    # -------------------------------------------------------------- rules

    @initialize(amount=st.integers(1, 20))
    def start(self, amount):
        self.fund(amount)

    @rule(amount=st.integers(1, 20))
    def fund(self, amount):
        self._tick()
        self.d.fund(amount * ONE, sender=self.env.funder)
        self.funded += amount * ONE

    @precondition(lambda self: self.funded > 0)
    @rule(percent=st.integers(0, 100), over=st.booleans())
    def report(self, percent, over):
        available = self.funded - (self.standing[-1].total if self.standing else 0)
        self._report(available * percent // 100, over)

    @rule(seconds=st.sampled_from([1, 600, 3_600, 86_400, 2 * 86_400]))
    def wait(self, seconds):
        self._tick(seconds)
        self.chain.mine()

    @precondition(lambda self: any(s.claimable_at > self.now + 1 for s in self.standing))
    @rule(data=st.data())
    def veto_then_report(self, data):
        now = self._tick()
        pending = [s for s in self.standing if s.claimable_at > now]
        victim = data.draw(st.sampled_from(pending), label="vetoed")
        tx = self.d.veto(victim.epoch, sender=self.gov)
        vetoed = [log.epoch for log in tx.decode_logs(self.d.ReportVetoed)]
        assert vetoed == [s.epoch for s in self.standing if s.epoch >= victim.epoch]
        self.standing = [s for s in self.standing if s.epoch < victim.epoch]
        self._report(0, False)  # a report can always follow a veto

    @rule(data=st.data())
    def rotate_then_report(self, data):
        keys = data.draw(
            st.lists(
                st.sampled_from([*self.env.oracles.keys, EXTRA_KEY]),
                min_size=1,
                max_size=4,
                unique_by=lambda k: k.address,
            ),
            label="keys",
        )
        threshold = data.draw(st.integers(1, len(keys)), label="threshold")
        self._tick()
        self.d.proposeOracleConfig(sorted(k.address for k in keys), threshold, sender=self.gov)
        eta = int(self.d.queuedConfigAt())
        assert all(s.claimable_at <= eta for s in self.standing)  # everything reported before it matures first
        self.now = max(self.now, eta) - 1
        self._tick()
        self.d.applyOracleConfig(sender=self.env.sender)
        self.keys, self.threshold = keys, threshold
        if self.funded:
            self._report(0, False)  # a report can always follow a rotation

    @rule(delay=st.sampled_from(DELAYS))
    def change_claim_delay(self, delay):
        self._tick()
        self.d.proposeClaimDelay(delay, sender=self.gov)
        self.now = max(self.now, int(self.d.queuedClaimDelayAt())) - 1
        self._tick()
        self.d.applyClaimDelay(sender=self.gov)

    @precondition(lambda self: self.standing)
    @rule(account=st.sampled_from(RECIPIENTS), batch=st.booleans())
    def claim(self, account, batch):
        self._tick()
        current = self._claimable()
        if current is None or account not in current.report.tree.amounts:
            return
        amount, proof = current.report.proof(account)
        owed = amount - self.claimed[account]
        room = current.total - sum(self.claimed.values())
        if batch:
            call = lambda: self.d.claimMany([account], [amount], [proof], sender=self.env.sender)  # noqa: E731
        else:
            call = lambda: self.d.claim(account, amount, proof, sender=self.env.sender)  # noqa: E731
        if owed > room:
            with self.env.reverts("RewardDistributor: exceeds the claimable total"):
                call()
            return
        if owed <= 0:
            if batch:
                assert call().return_value == 0
            else:
                with self.env.reverts("RewardDistributor: nothing to claim"):
                    call()
            return
        assert call().return_value == owed
        self.claimed[account] = amount

    # --------------------------------------------------------- invariants

    @invariant()
    def claimed_total_never_exceeds_funded_or_claimable(self):
        total = sum(self.claimed.values())
        assert self.d.totalClaimed() == total
        assert self.token.balanceOf(self.d) == self.funded - total
        assert total <= self.d.rewardsTotal() <= self.funded

    @invariant()
    def nobody_above_their_latest_claimable_cumulative(self):
        current = self._claimable()
        for a in RECIPIENTS:
            held = self.token.balanceOf(a)
            assert held == self.claimed[a]
            assert held <= (current.report.tree.amounts.get(a, 0) if current else 0)


def test_distributor_state_machine(distributor, token, oracles, governance, accounts, chain):
    funder = accounts[5]
    token.mint(funder, 10_000 * ONE, sender=governance)
    token.approve(distributor, 2**256 - 1, sender=funder)
    import ape

    DistributorMachine.env = SimpleNamespace(
        distributor=distributor, token=token, oracles=oracles, governance=governance, chain=chain,
        funder=funder, sender=accounts[6], reverts=ape.reverts,
    )  # fmt: skip
    run_state_machine_as_test(
        DistributorMachine,
        settings=settings(
            max_examples=6,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
