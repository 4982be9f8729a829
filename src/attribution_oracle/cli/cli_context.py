"""Shared CLI state: where things live, the chain client, the store, the catalog and output helpers."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any

import click
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from attribution_oracle.chain.block_follower import sync_catalog
from attribution_oracle.chain.chain_errors import WalletError
from attribution_oracle.chain.deployments import Deployment, load_deployment
from attribution_oracle.chain.reads import ChainReader
from attribution_oracle.chain.wallets import Wallets, dev_signer, is_dev_name
from attribution_oracle.chain.web3_client import DEFAULT_RPC, ChainClient, format_eth
from attribution_oracle.cli.params import UINT256_MAX
from attribution_oracle.errors import UserError
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.catalog import Catalog

OPEN_DECIMALS = 18


def default_home() -> Path:
    """``ATTRIBUTION_HOME`` or ``~/.attribution-oracle``."""
    return Path(os.environ.get("ATTRIBUTION_HOME", Path.home() / ".attribution-oracle"))


def parse_amount(text: str, what: str = "amount") -> int:
    """Parse a human OPEN/ETH amount ("12.5") into wei; ``UserError`` if malformed or negative."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise UserError(f"{what} {text!r} is not a number") from exc
    if not value.is_finite():
        raise UserError(f"{what} {text!r} is not a finite number (write it like 12.5)")
    wei = value * Decimal(10**OPEN_DECIMALS)
    if value < 0 or wei != wei.to_integral_value():
        raise UserError(f"{what} {text!r} must be non-negative with at most {OPEN_DECIMALS} decimals")
    if wei > UINT256_MAX:
        raise UserError(f"{what} {text!r} is too large: at most {format_eth(UINT256_MAX)} fits in a uint256")
    return int(wei)


@dataclass
class App:
    """Everything a command needs, built lazily so `--help` and offline commands stay fast."""

    home: Path
    rpc_url: str = DEFAULT_RPC
    json_output: bool = False
    console: Console = field(default_factory=lambda: Console(width=None if sys.stdout.isatty() else 160))
    _names: dict[str, str] | None = field(default=None, repr=False)

    @cached_property
    def client(self) -> ChainClient:
        """The chain client."""
        return ChainClient(self.rpc_url)

    @cached_property
    def reader(self) -> ChainReader:
        """Typed reads of the deployment's structs (Datanets, contributions, versions, models)."""
        return ChainReader(self.client, self.deployment)

    @cached_property
    def deployment(self) -> Deployment:
        """The deployment for the connected chain."""
        return load_deployment(self.client.chain_id, [self.home / "deployments", Path.cwd() / "deployments"])

    @cached_property
    def store(self) -> BlobStore:
        """The content-addressed blob store."""
        return BlobStore(self.home / "blobs")

    @cached_property
    def catalog(self) -> Catalog:
        """The SQLite catalog of the current deployment."""
        return Catalog(self.home / "catalog.sqlite", self.deployment.key)

    @cached_property
    def wallets(self) -> Wallets:
        """The keystore folder."""
        return Wallets()

    def contract(self, name: str) -> Any:
        """A deployed contract handle."""
        return self.client.contract(self.deployment, name)

    def address(self, name: str) -> str:
        """Resolve a wallet alias, ``dev:N`` or ``0x`` address."""
        return self.wallets.resolve_address(name)

    def names(self) -> dict[str, str]:
        """``{address: name}`` for the caller's keystore wallets and Anvil's dev accounts, to print names."""
        from attribution_oracle.chain.wallets import DEV_ACCOUNT_COUNT, dev_account

        if self._names is None:
            names = {dev_account(i).address: f"dev:{i}" for i in range(DEV_ACCOUNT_COUNT)}
            names.update({w.address: w.alias for w in self.wallets.list()})
            self._names = names
        return self._names

    def name_of(self, address: str) -> str:
        """A wallet name for ``address`` when the caller has one, else the address."""
        return self.names().get(address, address)

    def signer(self, name: str, password_file: Path | None = None) -> LocalAccount:
        """Unlock the account that signs: ``dev:N`` (local chains) or a keystore wallet."""
        if is_dev_name(name):
            return dev_signer(name)
        self.wallets.info(name)
        return self.wallets.unlock(name, read_password(name, password_file))

    def sync(self) -> int:
        """Bring the catalog up to the chain head (rolling back a reorg); returns the head block."""
        return sync_catalog(self.client, self.deployment, self.catalog)

    def emit(self, data: Any, table: Table | None = None) -> None:
        """Print ``data`` as JSON under ``--json``, else the table (or a plain line)."""
        if self.json_output:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            self.console.print(table if table is not None else data)

    def result(self, data: Any, message: str) -> None:
        """Report a command's outcome: ``data`` as JSON under ``--json``, else ``message``."""
        if self.json_output:
            self.emit(data)
        else:
            self.say(message)

    def say(self, message: str) -> None:
        """A human progress line (suppressed under ``--json``)."""
        if not self.json_output:
            self.console.print(message)


def read_password(alias: str, password_file: Path | None = None) -> str:
    """The wallet password: ``--password-file``, ``ATTRIBUTION_PASSWORD``, else a hidden prompt on a terminal."""
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\n")
        except OSError as exc:
            raise WalletError(f"cannot read password file {password_file}: {exc.strerror}") from exc
    if (env := os.environ.get("ATTRIBUTION_PASSWORD")) is not None:
        return env
    if not sys.stdin.isatty():
        raise WalletError(f"no password for wallet {alias!r}: set ATTRIBUTION_PASSWORD or pass --password-file")
    return click.prompt(f"Password for {alias}", hide_input=True)


AMOUNT_FIELDS = frozenset({"price", "min_stake", "fee_paid", "stake", "stake_returned", "stake_slashed"})


def as_dict(record: Any) -> dict:
    """A catalog record (dataclass) or mapping as a plain dict, for --json output.

    Amounts in wei are decimal strings, as everywhere in the JSON output (one type for every price and amount,
    exact beyond 2**53 for any JSON reader).
    """
    from dataclasses import asdict, is_dataclass

    data = asdict(record) if is_dataclass(record) else dict(record)
    return {k: str(v) if k in AMOUNT_FIELDS and isinstance(v, int) else v for k, v in data.items()}


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A rich table with the given header and rows (cells are stringified)."""
    t = Table(title=title, title_justify="left", min_width=len(title))  # wide enough that the title never wraps
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*[str(c) for c in row])
    return t


pass_app = click.make_pass_decorator(App)
from_option = click.option(
    "--from", "sender", required=True, metavar="WALLET", help="Signing account: a wallet name or dev:N (Anvil's keys)."
)
password_option = click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File holding the wallet password (default: $ATTRIBUTION_PASSWORD or a prompt).",
)
