"""`token mint|transfer|approve`: OPEN token operations."""

from __future__ import annotations

from pathlib import Path

import click

from attribution_oracle.chain.client import format_eth
from attribution_oracle.cli.app import App, from_option, parse_amount, pass_app, password_option


@click.group("token")
def command() -> None:
    """The OPEN token: mint (minters only) and transfer."""


def _report(app: App, action: str, to: str, amount: int, receipt) -> None:
    tx = receipt["transactionHash"].to_0x_hex()
    if app.json_output:
        app.emit({"action": action, "to": to, "amount": str(amount), "tx": tx})
    else:
        app.say(f"{action} {format_eth(amount)} OPEN to {to} ({tx})")


@command.command("mint")
@click.argument("to")
@click.argument("amount")
@from_option
@password_option
@pass_app
def mint(app: App, to: str, amount: str, sender: str, password_file: Path | None) -> None:
    """Mint AMOUNT OPEN to TO (the sender must hold the minter role)."""
    wei = parse_amount(amount)
    signer = app.signer(sender, password_file)
    address = app.address(to)
    token = app.contract("OpenToken")
    receipt = app.client.send(token.functions.mint(address, wei), signer, f"mint {amount} OPEN")
    _report(app, "minted", to, wei, receipt)


@command.command("transfer")
@click.argument("to")
@click.argument("amount")
@from_option
@password_option
@pass_app
def transfer(app: App, to: str, amount: str, sender: str, password_file: Path | None) -> None:
    """Transfer AMOUNT OPEN from the sender to TO."""
    wei = parse_amount(amount)
    signer = app.signer(sender, password_file)
    address = app.address(to)
    token = app.contract("OpenToken")
    balance = app.client.call(token.functions.balanceOf(signer.address))
    if balance < wei:
        from attribution_oracle.chain.errors import TransactionError

        raise TransactionError(f"{sender} holds {format_eth(balance)} OPEN, less than {amount}")
    receipt = app.client.send(token.functions.transfer(address, wei), signer, f"transfer {amount} OPEN")
    _report(app, "transferred", to, wei, receipt)
