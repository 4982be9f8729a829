"""Claiming rewards: the report the RewardDistributor currently pays out, what an account is owed, the claim.

Claims are cumulative: ``claim(account, cumulativeAmount, proof)`` pays the difference between the account's
cumulative reward in the claimable report and what it already claimed, to the account, whoever sends it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient, format_eth
from attribution_oracle.errors import UserError
from attribution_oracle.settlement.chain_data import submissions
from attribution_oracle.settlement.report_service import load_report
from attribution_oracle.store.blobs import BlobStore

__all__ = [
    "ClaimResult",
    "PreparedClaim",
    "RewardStanding",
    "claimable_report",
    "prepare_claim",
    "reward_standing",
    "send_claim",
]


@dataclass(frozen=True)
class RewardStanding:
    """An account's cumulative reward in the claimable report, what it claimed, and what it can claim now."""

    address: str
    cumulative: int
    claimed: int

    @property
    def claimable(self) -> int:
        """What a claim would pay now."""
        return self.cumulative - self.claimed


@dataclass(frozen=True)
class ClaimResult:
    """A sent claim."""

    address: str
    amount: int
    tx: str
    gas_used: int


def claimable_report(client: ChainClient, deployment: Deployment, store: BlobStore):
    """The accepted report whose rewards root the distributor holds now, and its URI (``(None, None)`` if none)."""
    distributor = client.contract(deployment, "RewardDistributor")
    root = bytes(client.call(distributor.functions.rewardsRoot()))
    for sub in reversed(submissions(client, deployment)):
        if sub.rewards_root == root:
            return load_report(store, sub.report_uri), sub.report_uri
    return None, None


def reward_standing(client: ChainClient, deployment: Deployment, report, address: str) -> RewardStanding:
    """``address``'s standing against ``report`` (None: no report yet)."""
    distributor = client.contract(deployment, "RewardDistributor")
    cumulative = report.rewards.get(address, 0) if report else 0
    return RewardStanding(address, cumulative, int(client.call(distributor.functions.claimed(address))))


@dataclass(frozen=True)
class PreparedClaim:
    """What a claim will send: the account, its cumulative amount, the Merkle proof and what it pays now."""

    address: str
    cumulative: int
    proof: list[bytes]
    due: int


def prepare_claim(
    client: ChainClient, deployment: Deployment, store: BlobStore, address: str, name: str
) -> PreparedClaim:
    """Everything checked before signing: ``UserError`` if ``address`` has no rewards or nothing left to claim."""
    report, _ = claimable_report(client, deployment, store)
    if report is None or address not in report.rewards:
        raise UserError(f"{name} has no rewards in the claimable report")
    cumulative, proof = report.rewards_tree.proof(address)
    due = cumulative - reward_standing(client, deployment, report, address).claimed
    if due <= 0:
        raise UserError(f"{name} has already claimed everything up to {format_eth(cumulative)} OPEN")
    return PreparedClaim(address, cumulative, proof, due)


def send_claim(
    client: ChainClient, deployment: Deployment, claim: PreparedClaim, signer: LocalAccount, name: str
) -> ClaimResult:
    """Send a prepared claim (anyone may send it; the OPEN goes to ``claim.address``)."""
    distributor = client.contract(deployment, "RewardDistributor")
    fn = distributor.functions.claim(claim.address, claim.cumulative, claim.proof)
    receipt = client.send(fn, signer, f"claim for {name}")
    return ClaimResult(claim.address, claim.due, receipt["transactionHash"].to_0x_hex(), int(receipt["gasUsed"]))
