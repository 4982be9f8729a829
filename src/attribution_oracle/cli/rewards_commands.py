"""`rewards show|claim`: what an account earned, and claiming it with a Merkle proof (logic: settlement.claims)."""

from __future__ import annotations

import click

from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.cli.cli_context import App, from_option, pass_app, password_option, table
from attribution_oracle.settlement.claims import claimable_report, prepare_claim, reward_standing, send_claim


@click.group("rewards")
def command() -> None:
    """Rewards from accepted reports: show and claim (cumulative: one claim collects every epoch)."""


@command.command("show")
@click.argument("accounts", nargs=-1, required=True)
@pass_app
def show(app: App, accounts: tuple[str, ...]) -> None:
    """Show each account's cumulative reward, what it claimed and what it can claim now."""
    report, uri = claimable_report(app.client, app.deployment, app.store)
    rows = []
    for name in accounts:
        standing = reward_standing(app.client, app.deployment, report, app.address(name))
        rows.append((name, standing))
    app.emit(
        [
            {
                "account": name,
                "address": s.address,
                "cumulative": str(s.cumulative),
                "claimed": str(s.claimed),
                "claimable": str(s.claimable),
                "report": uri,
            }
            for name, s in rows
        ],  # fmt: skip
        table(
            f"rewards (report {uri or 'none yet'})",
            ["account", "address", "cumulative OPEN", "claimed", "claimable"],
            [
                [name, s.address, format_eth(s.cumulative), format_eth(s.claimed), format_eth(s.claimable)]
                for name, s in rows
            ],
        ),
    )


@command.command("claim")
@click.argument("account")
@from_option
@password_option
@pass_app
def claim(app: App, account: str, sender: str, password_file) -> None:
    """Claim ACCOUNT's rewards (anyone may send it; the OPEN goes to ACCOUNT)."""
    prepared = prepare_claim(app.client, app.deployment, app.store, app.address(account), account)
    done = send_claim(app.client, app.deployment, prepared, app.signer(sender, password_file), account)
    app.result(
        {"account": done.address, "amount": str(done.amount), "tx": done.tx},
        f"claimed {format_eth(done.amount)} OPEN for {account} (gas {done.gas_used:,})",
    )
