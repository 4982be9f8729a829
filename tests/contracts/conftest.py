"""Shared fixtures for the contract tests (``ape test tests/contracts``).

Deployments are session-scoped and state-changing setup (funding, Datanets) is module-scoped: ape
snapshots the chain after each scope's fixtures are built and restores it around every test (and at the
end of every module), so each test starts from the same freshly wired system. Fixtures that only name
accounts or return helpers are marked ``chain_isolation=False`` so that ape need not rebase snapshots when a
test asks for one of them first.
"""

from __future__ import annotations

import ape
import ape.exceptions
import ape_ethereum.trace
import pytest
import registry_fixtures
from contract_helpers import CREATION_FEE, MAX_UINT256, ONE

# this folder's own deployments (see registry_fixtures)
datanet_registry = registry_fixtures.datanet_registry
model_registry = registry_fixtures.model_registry
token = registry_fixtures.token


@ape.fixture(scope="session", chain_isolation=False)
def governance(accounts):
    """Deployer of every contract: owner of OPEN (and its first minter) and of both registries."""
    return accounts[0]


@ape.fixture(scope="session", chain_isolation=False)
def deployer(governance):
    return governance


@ape.fixture(scope="session", chain_isolation=False)
def treasury(accounts):
    return accounts[1]


@ape.fixture(scope="session", chain_isolation=False)
def alice(accounts):
    return accounts[2]


@ape.fixture(scope="session", chain_isolation=False)
def bob(accounts):
    return accounts[3]


@ape.fixture(scope="session", chain_isolation=False)
def carol(accounts):
    return accounts[4]


@ape.fixture(scope="session", chain_isolation=False)
def dave(accounts):
    return accounts[5]


# Roles of the market-system tests (agents/, settlement/): the same accounts under the names those tests use.
@ape.fixture(scope="session", chain_isolation=False)
def model_owner(accounts):
    return accounts[2]


@ape.fixture(scope="session", chain_isolation=False)
def datanet_owner(accounts):
    return accounts[3]


@ape.fixture(scope="session", chain_isolation=False)
def stranger(accounts):
    """No role anywhere."""
    return accounts[5]


@ape.fixture(scope="session", chain_isolation=False)
def operator(accounts):
    """The market's serving operator (the market fixtures appoint it)."""
    return accounts[6]


@ape.fixture(scope="session", chain_isolation=False)
def users(accounts):
    """Ordinary accounts (no roles anywhere)."""
    return [accounts[i] for i in range(2, 8)]


@pytest.fixture
def quiet_reverts(monkeypatch):
    """Skip the diagnostics ape builds for every reverted transaction (the revert reason is unaffected).

    For each revert ape rebuilds a Vyper source traceback by streaming the transaction's struct logs over
    RPC (seconds for a ``claimMany``) and ape-foundry prints an enriched call tree (~0.5 s). Tests that assert
    revert messages with ``ape.reverts("...")`` need neither; a folder opts in with an autouse fixture.
    """
    monkeypatch.setattr(ape.exceptions, "_get_ape_traceback_from_tx", lambda txn: None)
    monkeypatch.setattr(ape_ethereum.trace.Trace, "show", lambda self, *args, **kwargs: None)


@ape.fixture(scope="session", chain_isolation=False)
def mint_and_approve(token, governance):
    """``mint_and_approve(account, amount, spender=None)``: mint OPEN to ``account`` and approve ``spender``."""

    def _mint_and_approve(account, amount: int, spender=None, allowance: int | None = None):
        token.mint(account, amount, sender=governance)
        if spender is not None:
            token.approve(spender, amount if allowance is None else allowance, sender=account)
        return amount

    return _mint_and_approve


@pytest.fixture(scope="module")
def funded(users, datanet_registry, mint_and_approve):
    """Every user holds 1,000,000 OPEN and has approved the DatanetRegistry for all of it."""
    for user in users:
        mint_and_approve(user, 1_000_000 * ONE, spender=datanet_registry, allowance=MAX_UINT256)
    return users


@pytest.fixture(scope="module")
def create_datanet(datanet_registry, mint_and_approve, funded):
    """``create_datanet(owner, min_stake=0, name="...")`` -> datanet id (the owner is funded beforehand)."""

    def _create(owner, min_stake: int = 0, name: str = "medical-qa", uri: str = "ipfs://meta") -> int:
        if owner not in funded:
            mint_and_approve(owner, CREATION_FEE, spender=datanet_registry)
        tx = datanet_registry.createDatanet(name, uri, min_stake, sender=owner)
        return tx.return_value

    return _create
