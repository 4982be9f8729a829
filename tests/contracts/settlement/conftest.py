"""Fixtures of the settlement tests: the whole system, wired as `deploy_all` wires it.

OPEN, a DatanetRegistry with one published version, a ModelRegistry with one active model, a RewardDistributor
with three oracle signers (ape test accounts 7-9, signing off-chain with ``eth_account``) and threshold 2 (no
claim delay; tests that need one set it), and an InferenceMarket with one serving operator. Everything is
session-scoped: ape snapshots the chain after building it and restores it around every test.

Roles: governance = accounts[0] (deployer and owner of everything), treasury = accounts[1], model owner =
accounts[2], Datanet owner = accounts[3], payer = accounts[4], stranger = accounts[5] (no role anywhere),
operator = accounts[6].
"""

from __future__ import annotations

import pytest
import registry_fixtures
from contract_helpers import MAX_UINT256, content_hash
from eth_account import Account
from settlement_helpers import (
    EPOCH_BLOCKS,
    ONE,
    PRICE,
    SERVICE_WINDOW,
    SPLIT,
    THRESHOLD,
    Oracles,
)

# this folder's own deployments (see registry_fixtures)
datanet_registry = registry_fixtures.datanet_registry
datanet_version = registry_fixtures.datanet_version
model_registry = registry_fixtures.model_registry
token = registry_fixtures.token


@pytest.fixture(autouse=True)
def _no_revert_diagnostics(quiet_reverts):
    """Every test here asserts revert reasons only (see ``quiet_reverts``)."""


@pytest.fixture(scope="session")
def payer(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def oracle_accounts(accounts):
    return [accounts[7], accounts[8], accounts[9]]


@pytest.fixture(scope="session")
def oracle_keys(oracle_accounts):
    """The three oracle signers as eth-account LocalAccounts (they sign reports off-chain)."""
    return [Account.from_key(a.private_key) for a in oracle_accounts]


@pytest.fixture(scope="session")
def oracles(oracle_keys, chain):
    return Oracles(oracle_keys, chain.chain_id)


@pytest.fixture(scope="session")
def model_id(model_registry, datanet_version, model_owner):
    """An active model priced PRICE with split SPLIT, trained on the published version."""
    tx = model_registry.register(
        content_hash("base"), content_hash("adapter"), [datanet_version], PRICE, SPLIT, "ipfs://m", sender=model_owner
    )
    return tx.return_value


@pytest.fixture(scope="session")
def distributor(project, token, oracle_keys, governance):
    return project.RewardDistributor.deploy(token, [k.address for k in oracle_keys], THRESHOLD, 0, sender=governance)


@pytest.fixture(scope="session")
def market(project, token, model_registry, distributor, treasury, governance, operator):
    market = project.InferenceMarket.deploy(
        token, model_registry, distributor, treasury, EPOCH_BLOCKS, SERVICE_WINDOW, sender=governance
    )
    market.setOperator(operator, True, sender=governance)
    return market


@pytest.fixture(scope="session")
def funded_payer(token, governance, payer, market):
    """The payer holds 100,000 OPEN and has approved the market for all of it."""
    token.mint(payer, 100_000 * ONE, sender=governance)
    token.approve(market, MAX_UINT256, sender=payer)
    return payer


@pytest.fixture(scope="session")
def system(token, datanet_registry, model_registry, model_id, distributor, market, funded_payer):
    """Everything deployed and wired, the payer funded: tests that use several contracts ask for this."""
    return market
