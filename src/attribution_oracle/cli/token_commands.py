"""`token mint|transfer|approve`: OPEN token operations."""

from __future__ import annotations

from pathlib import Path

import click

from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.cli.cli_context import App, from_option, parse_amount, pass_app, password_option


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
@click.argument("recipients", metavar="TO...", nargs=-1, required=True)
@click.argument("amount")
@from_option
@password_option
@pass_app
def mint(app: App, recipients: tuple[str, ...], amount: str, sender: str, password_file: Path | None) -> None:
    """Mint AMOUNT OPEN to each TO (the sender must hold the minter role); several are sent back to back.

    With one recipient, --json gives one object; with several, a list.
    """
    wei = parse_amount(amount)
    signer = app.signer(sender, password_file)
    addresses = [app.address(to) for to in recipients]
    token = app.contract("OpenToken")
    calls = [
        (token.functions.mint(address, wei), f"mint {amount} OPEN to {to}")
        for to, address in zip(recipients, addresses, strict=True)
    ]
    receipts = app.client.send_many(calls, signer)
    if len(receipts) == 1:
        _report(app, "minted", recipients[0], wei, receipts[0])
        return
    minted = []
    for to, receipt in zip(recipients, receipts, strict=True):
        tx = receipt["transactionHash"].to_0x_hex()
        minted.append({"action": "minted", "to": to, "amount": str(wei), "tx": tx})
        app.say(f"minted {format_eth(wei)} OPEN to {to} ({tx})")
    if app.json_output:
        app.emit(minted)


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
        from attribution_oracle.chain.chain_errors import TransactionError

        raise TransactionError(f"{sender} holds {format_eth(balance)} OPEN, less than {amount}")
    receipt = app.client.send(token.functions.transfer(address, wei), signer, f"transfer {amount} OPEN")
    _report(app, "transferred", to, wei, receipt)
