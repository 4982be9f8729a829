"""`rewards show|claim`: what an account earned, and claiming it with a Merkle proof."""

from __future__ import annotations

import click

from attribution_oracle.chain.client import format_eth
from attribution_oracle.cli.app import App, from_option, pass_app, password_option, table
from attribution_oracle.errors import UserError
from attribution_oracle.settlement.service import load_report


def _claimable_report(app: App):
    distributor = app.contract("RewardDistributor")
    root = bytes(app.client.call(distributor.functions.rewardsRoot()))
    from attribution_oracle.settlement.chain_data import submissions

    for sub in reversed(submissions(app.client, app.deployment)):
        if sub.rewards_root == root:
            return load_report(app.store, sub.report_uri), sub.report_uri
    return None, None


@click.group("rewards")
def command() -> None:
    """Rewards from accepted reports: show and claim (cumulative: one claim collects every epoch)."""


@command.command("show")
@click.argument("accounts", nargs=-1, required=True)
@pass_app
def show(app: App, accounts: tuple[str, ...]) -> None:
    """Show each account's cumulative reward, what it claimed and what it can claim now."""
    distributor = app.contract("RewardDistributor")
    report, uri = _claimable_report(app)
    rows = []
    for name in accounts:
        address = app.address(name)
        cumulative = report.rewards.get(address, 0) if report else 0
        claimed = app.client.call(distributor.functions.claimed(address))
        rows.append({"account": name, "address": address, "cumulative": cumulative, "claimed": claimed})
    app.emit(
        [{**r, "claimable": r["cumulative"] - r["claimed"], "report": uri} for r in rows],
        table(
            f"rewards (report {uri or 'none yet'})",
            ["account", "address", "cumulative OPEN", "claimed", "claimable"],
            [
                [
                    r["account"],
                    r["address"],
                    format_eth(r["cumulative"]),
                    format_eth(r["claimed"]),
                    format_eth(r["cumulative"] - r["claimed"]),
                ]
                for r in rows
            ],  # fmt: skip
        ),
    )


@command.command("claim")
@click.argument("account")
@from_option
@password_option
@pass_app
def claim(app: App, account: str, sender: str, password_file) -> None:
    """Claim ACCOUNT's rewards (anyone may send it; the OPEN goes to ACCOUNT)."""
    distributor = app.contract("RewardDistributor")
    report, uri = _claimable_report(app)
    address = app.address(account)
    if report is None or address not in report.rewards:
        raise UserError(f"{account} has no rewards in the claimable report")
    cumulative, proof = report.rewards_tree.proof(address)
    due = cumulative - app.client.call(distributor.functions.claimed(address))
    if due <= 0:
        raise UserError(f"{account} has already claimed everything up to {format_eth(cumulative)} OPEN")
    signer = app.signer(sender, password_file)
    receipt = app.client.send(distributor.functions.claim(address, cumulative, proof), signer, f"claim for {account}")
    app.result(
        {"account": address, "amount": str(due), "tx": receipt["transactionHash"].to_0x_hex()},
        f"claimed {format_eth(due)} OPEN for {account} (gas {receipt['gasUsed']:,})",
    )
