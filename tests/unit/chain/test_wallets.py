"""Keystore v3 wallets in ape's layout."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from attribution_oracle.chain.chain_errors import WalletError
from attribution_oracle.chain.wallets import Wallets, dev_account

ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def test_create_list_unlock(tmp_path):
    wallets = Wallets(tmp_path)
    info = wallets.create("alice", "pw")
    assert info.path == tmp_path / "alice.json"
    assert [(w.alias, w.address) for w in wallets.list()] == [("alice", info.address)]
    assert wallets.unlock("alice", "pw").address == info.address
    keystore = json.loads(info.path.read_text())
    assert keystore["version"] == 3 and keystore["address"].lower() == info.address[2:].lower()
    assert oct(info.path.stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob("*.tmp"))


def test_keystore_is_what_ape_writes(tmp_path):
    """ape's KeyfileAccount reads our file and decrypts it to the same key."""
    from ape_accounts.accounts import KeyfileAccount

    info = Wallets(tmp_path).import_key("dev", ANVIL_KEY_0, "pw")
    account = KeyfileAccount(keyfile_path=info.path)
    assert account.address == info.address
    assert Account.decrypt(account.keyfile, "pw").hex() == ANVIL_KEY_0[2:]


def test_wrong_password(tmp_path):
    Wallets(tmp_path).create("bob", "right")
    with pytest.raises(WalletError, match="wrong password for wallet 'bob'"):
        Wallets(tmp_path).unlock("bob", "wrong")


def test_bad_inputs(tmp_path):
    wallets = Wallets(tmp_path)
    wallets.create("carol", "pw")
    with pytest.raises(WalletError, match="exists already"):
        wallets.create("carol", "pw")
    with pytest.raises(WalletError, match="not a valid private key"):
        wallets.import_key("dave", "0x1234", "pw")
    with pytest.raises(WalletError, match="invalid wallet name"):
        wallets.create("../evil", "pw")
    with pytest.raises(WalletError, match="empty password"):
        wallets.create("erin", "")
    with pytest.raises(WalletError, match="unknown wallet 'zed'"):
        wallets.unlock("zed", "pw")
    with pytest.raises(WalletError, match="dev:0 to dev:9"):
        wallets.resolve_address("dev:10")


def test_dev_accounts_are_anvils(tmp_path):
    assert dev_account(0).key.to_0x_hex() == ANVIL_KEY_0
    assert Wallets(tmp_path).resolve_address("dev:0") == dev_account(0).address
