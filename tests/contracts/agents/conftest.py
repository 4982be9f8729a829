"""Fixtures of the agent tests: the market system plus an AgentVault, wired as ``deploy_all`` wires them.

Roles: governance = accounts[0], treasury = accounts[1], model owner = accounts[2], Datanet owner = accounts[3],
agent owner = accounts[4], stranger = accounts[5], operator = accounts[6] (serving operator, also the server
that submits signed authorizations), session key = accounts[7] (pays directly; has gas), validators = three
eth-account keys. Model 1 is flat-priced (PRICE); model 2 charges per token (RATES); model 3 is flat and not on
the session key's allow-list. Everything is session-scoped: ape snapshots the chain after building it and
restores it around every test.
"""

from __future__ import annotations

import pytest
import registry_fixtures
from agent_helpers import (
    AGENT_BUDGET,
    COOLDOWN,
    KEY_CAPS,
    MIN_STAKE,
    ONE,
    PRICE,
    RATES,
    SERVICE_WINDOW,
    SLASH_DELAY,
    SPLIT,
)
from contract_helpers import MAX_UINT256, content_hash
from eth_account import Account
from eth_utils import keccak

# this folder's own deployments (see registry_fixtures)
datanet_registry = registry_fixtures.datanet_registry
datanet_version = registry_fixtures.datanet_version
model_registry = registry_fixtures.model_registry
token = registry_fixtures.token


@pytest.fixture(autouse=True)
def _no_revert_diagnostics(quiet_reverts):
    """Every test here asserts revert reasons only (see ``quiet_reverts``)."""


@pytest.fixture(scope="session")
def agent_owner(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def session_key(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def signing_key():
    """A session key that never sends a transaction (it only signs x402 authorizations)."""
    return Account.from_key(keccak(text="agent-tests:signing-key"))


@pytest.fixture(scope="session")
def validator_keys():
    keys = [Account.from_key(keccak(text=f"agent-tests:validator-{i}")) for i in range(3)]
    return sorted(keys, key=lambda k: int(k.address, 16))


@pytest.fixture(scope="session")
def models(model_registry, datanet_version, model_owner):
    """(flat model id, per-token model id, flat model outside the key's allow-list)."""
    ids = []
    for label in ("flat", "metered", "other"):
        tx = model_registry.register(
            content_hash("base"), content_hash(label), [datanet_version], PRICE, SPLIT, "ipfs://m", sender=model_owner
        )
        ids.append(tx.return_value)
    model_registry.setTokenRates(ids[1], RATES, sender=model_owner)
    return tuple(ids)


@pytest.fixture(scope="session")
def distributor(project, token, validator_keys, governance):
    return project.RewardDistributor.deploy(token, [validator_keys[0].address], 1, 0, sender=governance)


@pytest.fixture(scope="session")
def market(project, token, model_registry, distributor, treasury, governance, operator, models):
    market = project.InferenceMarket.deploy(
        token, model_registry, distributor, treasury, 10, SERVICE_WINDOW, sender=governance
    )
    market.setOperator(operator, True, sender=governance)
    return market


@pytest.fixture(scope="session")
def vault(project, token, market, treasury, governance, validator_keys):
    return project.AgentVault.deploy(
        token, market, treasury, MIN_STAKE, COOLDOWN, SLASH_DELAY, [k.address for k in validator_keys], 2,
        sender=governance,
    )  # fmt: skip


@pytest.fixture(scope="session")
def agent_id(vault, token, governance, agent_owner, session_key, signing_key, models, chain):
    """A registered, staked, funded agent with two session keys (direct and signing) on models 1 and 2."""
    token.mint(agent_owner, 100_000 * ONE, sender=governance)
    token.approve(vault, MAX_UINT256, sender=agent_owner)
    agent = vault.register("sha256://" + "ab" * 32, sender=agent_owner).return_value
    vault.stake(agent, MIN_STAKE, sender=agent_owner)
    vault.deposit(agent, AGENT_BUDGET, sender=agent_owner)
    expiry = chain.pending_timestamp + 30 * 86_400
    for key in (session_key.address, signing_key.address):
        vault.grant(agent, key, *KEY_CAPS(expiry), [models[0], models[1]], sender=agent_owner)
    return agent


@pytest.fixture(scope="session")
def direct_payer(token, governance, accounts, market):
    """accounts[8]: pays the market directly (the baseline the vault is compared with)."""
    payer = accounts[8]
    token.mint(payer, 100_000 * ONE, sender=governance)
    token.approve(market, MAX_UINT256, sender=payer)
    return payer
