"""Wallets: encrypted keystore v3 files in ape's layout, plus Anvil's funded dev keys.

A wallet named ``alice`` lives in ``<accounts_dir>/alice.json``, written by ``eth_account.Account.encrypt``
exactly as ``ape accounts generate`` writes it, so ape and this package can use each other's accounts.
The default folder is ape's: ``$APE_DATA_FOLDER/accounts`` or ``~/.ape/accounts``; ``ATTRIBUTION_ACCOUNTS_DIR``
overrides it. Dev signers ``dev:0`` .. ``dev:9`` are derived from Anvil's public test mnemonic and are for
local chains only. Private keys are never printed or logged.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from attribution_oracle.chain.chain_errors import WalletError

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Account.enable_unaudited_hdwallet_features()


def default_accounts_dir() -> Path:
    """Return the wallet folder: ``ATTRIBUTION_ACCOUNTS_DIR``, else ape's accounts folder."""
    if env := os.environ.get("ATTRIBUTION_ACCOUNTS_DIR"):
        return Path(env)
    return Path(os.environ.get("APE_DATA_FOLDER", Path.home() / ".ape")) / "accounts"


def dev_account(index: int) -> LocalAccount:
    """Return Anvil's funded dev account ``index`` (0-9), derived from the public test mnemonic."""
    if not 0 <= index < DEV_ACCOUNT_COUNT:
        raise WalletError(f"dev accounts are dev:0 to dev:{DEV_ACCOUNT_COUNT - 1}, not dev:{index}")
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


@dataclass(frozen=True)
class WalletInfo:
    """A wallet on disk: its alias, address and file."""

    alias: str
    address: str
    path: Path


class Wallets:
    """Create, import, list and unlock keystore v3 wallets in one folder."""

    def __init__(self, accounts_dir: Path | None = None) -> None:
        self.dir = Path(accounts_dir) if accounts_dir else default_accounts_dir()

    def _path(self, alias: str) -> Path:
        if not _ALIAS.match(alias):
            raise WalletError(f"invalid wallet name {alias!r}: use letters, digits, '.', '_' or '-'")
        if alias.lower().startswith("0x"):
            raise WalletError(
                f"invalid wallet name {alias!r}: a name starting with 0x reads as an address; choose another name"
            )
        return self.dir / f"{alias}.json"

    def create(self, alias: str, password: str) -> WalletInfo:
        """Generate a new key and store it encrypted under ``alias``."""
        return self._store(alias, Account.create(), password)

    def check_new(self, alias: str) -> None:
        """Raise ``WalletError`` if ``alias`` is not a valid name or a wallet of that name exists (creates nothing)."""
        path = self._path(alias)
        if path.exists():
            raise WalletError(f"a wallet named {alias!r} exists already at {path}")

    def import_key(self, alias: str, private_key: str, password: str) -> WalletInfo:
        """Store an existing private key (hex) encrypted under ``alias``."""
        try:
            account = Account.from_key(private_key.strip())
        except (ValueError, TypeError) as exc:
            raise WalletError("that is not a valid private key (expected 32 bytes of hex)") from exc
        return self._store(alias, account, password)

    def _store(self, alias: str, account: LocalAccount, password: str) -> WalletInfo:
        path = self._path(alias)
        if path.exists():
            raise WalletError(f"a wallet named {alias!r} exists already at {path}")
        if not password:
            raise WalletError("refusing an empty password")
        keystore = Account.encrypt(account.key, password)
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{alias}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(keystore, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return WalletInfo(alias, account.address, path)

    def list(self) -> list[WalletInfo]:
        """Return every wallet in the folder, sorted by alias (unreadable files are skipped)."""
        found = []
        for path in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                address = json.loads(path.read_text())["address"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            found.append(WalletInfo(path.stem, to_checksum_address(address), path))
        return found

    def info(self, alias: str) -> WalletInfo:
        """Return one wallet's alias, address and path; ``WalletError`` if unknown."""
        path = self._path(alias)
        if not path.is_file():
            raise WalletError(f"unknown wallet {alias!r} (no {path}); see `wallet list`")
        try:
            address = json.loads(path.read_text())["address"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WalletError(f"wallet file {path} is not a keystore v3 file") from exc
        return WalletInfo(alias, to_checksum_address(address), path)

    def unlock(self, alias: str, password: str) -> LocalAccount:
        """Decrypt a wallet; ``WalletError`` on a wrong password."""
        info = self.info(alias)
        keystore = json.loads(info.path.read_text())
        try:
            key = Account.decrypt(keystore, password)
        except ValueError as exc:
            raise WalletError(f"wrong password for wallet {alias!r}") from exc
        return Account.from_key(key)

    def resolve_address(self, name: str) -> str:
        """Turn ``0x..``, ``dev:N`` or a wallet alias into a checksummed address (no password needed)."""
        if name.startswith("dev:"):
            return dev_account(_dev_index(name)).address
        if name.startswith("0x"):
            if not is_address(name):
                raise WalletError(f"{name!r} is not a valid address")
            return to_checksum_address(name)
        return self.info(name).address


def _dev_index(name: str) -> int:
    try:
        return int(name.split(":", 1)[1])
    except ValueError as exc:
        raise WalletError(f"{name!r} is not a dev account: use dev:0 to dev:9") from exc


def is_dev_name(name: str) -> bool:
    """Whether ``name`` names a dev account (``dev:N``)."""
    return name.startswith("dev:")


def dev_signer(name: str) -> LocalAccount:
    """Return the dev account named ``dev:N``."""
    return dev_account(_dev_index(name))
