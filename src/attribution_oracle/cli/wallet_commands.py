"""`wallet new|import|list|balance|fund`: keystore v3 wallets in ape's folder layout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from attribution_oracle.chain.chain_errors import WalletError
from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.cli.cli_context import (
    App,
    from_option,
    parse_amount,
    pass_app,
    password_option,
    read_password,
    table,
)


def _new_password(alias: str, password_file: Path | None) -> str:
    if password_file is not None or "ATTRIBUTION_PASSWORD" in os.environ or not sys.stdin.isatty():
        return read_password(alias, password_file)
    return click.prompt(f"New password for {alias}", hide_input=True, confirmation_prompt=True)


@click.group("wallet")
def command() -> None:
    """Encrypted keystore wallets (the files ape accounts uses) and balances."""


@command.command("new")
@click.argument("aliases", metavar="ALIAS...", nargs=-1, required=True)
@password_option
@pass_app
def new(app: App, aliases: tuple[str, ...], password_file: Path | None) -> None:
    """Create wallets with fresh keys, encrypted with a password (several names: all checked first, one password).

    With one name, --json gives one object; with several, a list.
    """
    if len(set(aliases)) != len(aliases):
        raise WalletError("a wallet name is given twice")
    for alias in aliases:
        app.wallets.check_new(alias)
    password = _new_password(aliases[0] if len(aliases) == 1 else ", ".join(aliases), password_file)
    created = []
    for alias in aliases:
        info = app.wallets.create(alias, password)
        created.append({"alias": info.alias, "address": info.address, "file": str(info.path)})
        app.say(f"created wallet {info.alias}: {info.address} ({info.path})")
    if app.json_output:
        app.emit(created[0] if len(created) == 1 else created)


@command.command("import")
@click.argument("alias")
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="File holding the private key in hex (default: $ATTRIBUTION_PRIVATE_KEY or a hidden prompt).",
)
@password_option
@pass_app
def import_(app: App, alias: str, key_file: Path | None, password_file: Path | None) -> None:
    """Import an existing private key as an encrypted wallet."""
    if key_file is not None:
        key = key_file.read_text().strip()
    elif "ATTRIBUTION_PRIVATE_KEY" in os.environ:
        key = os.environ["ATTRIBUTION_PRIVATE_KEY"]
    elif sys.stdin.isatty():
        key = click.prompt("Private key (hex)", hide_input=True)
    else:
        raise WalletError("no private key: pass --key-file or set ATTRIBUTION_PRIVATE_KEY")
    info = app.wallets.import_key(alias, key, _new_password(alias, password_file))
    app.result(
        {"alias": info.alias, "address": info.address, "file": str(info.path)},
        f"imported wallet {info.alias}: {info.address}",
    )


@command.command("list")
@pass_app
def list_(app: App) -> None:
    """List the wallets in the keystore folder."""
    wallets = app.wallets.list()
    rows = [[w.alias, w.address, w.path] for w in wallets]
    app.emit(
        [{"alias": a, "address": b, "file": str(c)} for a, b, c in rows],
        table(f"wallets in {app.wallets.dir}", ["alias", "address", "file"], rows),
    )


@command.command("balance")
@click.argument("accounts", nargs=-1, required=True)
@pass_app
def balance(app: App, accounts: tuple[str, ...]) -> None:
    """Show ETH and OPEN balances of wallets, dev:N accounts or addresses."""
    token = app.contract("OpenToken")
    rows = []
    for name in accounts:
        address = app.address(name)
        rows.append(
            {
                "account": name,
                "address": address,
                "eth": str(app.client.eth_balance(address)),
                "open": str(app.client.call(token.functions.balanceOf(address))),
            }
        )
    app.emit(
        rows,
        table(
            "balances",
            ["account", "address", "ETH", "OPEN"],
            [[r["account"], r["address"], format_eth(int(r["eth"])), format_eth(int(r["open"]))] for r in rows],
        ),
    )


@command.command("fund")
@click.argument("recipients", metavar="TO...", nargs=-1, required=True)
@click.option("--eth", "amount", default="1", show_default=True, help="ETH to send each for gas.")
@from_option
@password_option
@pass_app
def fund(app: App, recipients: tuple[str, ...], amount: str, sender: str, password_file: Path | None) -> None:
    """Send ETH (for gas) from one account to others (several: sent back to back, one block or two).

    With one recipient, --json gives one object; with several, a list.
    """
    wei = parse_amount(amount, "ETH amount")
    signer = app.signer(sender, password_file)
    addresses = [app.address(to) for to in recipients]
    receipts = app.client.send_eth_many(signer, [(address, wei) for address in addresses])
    sent = []
    for to, address, receipt in zip(recipients, addresses, receipts, strict=True):
        tx = receipt["transactionHash"].to_0x_hex()
        sent.append({"to": address, "eth": str(wei), "tx": tx})
        app.say(f"sent {format_eth(wei)} ETH to {to} ({tx})")
    if app.json_output:
        app.emit(sent[0] if len(sent) == 1 else sent)
