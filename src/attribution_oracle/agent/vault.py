"""The AgentVault from Python: register, stake, fund, grant and revoke session keys, read an agent's state.

Every read decodes structs by name (``decode_tuples=True``); every write goes through ``ChainClient.send``
(checked before signing, so a refused call costs nothing and says why).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.open_token import ensure_allowance, events_of
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.errors import UserError

__all__ = ["AgentVaultClient", "AgentStatus", "SessionKeyState", "named_contract"]


def named_contract(client: ChainClient, deployment: Deployment, name: str) -> Contract:
    """A contract handle whose struct results are read by field name."""
    record = deployment.contracts.get(name)
    if record is None:
        raise UserError(f"the deployment has no {name} (redeploy with this version: `attribution-oracle deploy`)")
    return client.w3.eth.contract(address=Web3.to_checksum_address(record.address), abi=record.abi, decode_tuples=True)


@dataclass(frozen=True)
class SessionKeyState:
    """A session key's caps and spending as the vault holds them."""

    key: str
    agent_id: int
    max_price_per_call: int
    expiry: int
    period_length: int
    period_cap: int
    total_cap: int
    revoked: bool
    total_spent: int
    period_spent: int
    period: int = 0

    @property
    def period_remaining(self) -> int:
        """What the key may still spend in the current period."""
        return max(0, self.period_cap - self.period_spent)

    @property
    def total_remaining(self) -> int:
        """What the key may still spend over its life."""
        return max(0, self.total_cap - self.total_spent)


@dataclass(frozen=True)
class AgentStatus:
    """An agent: owner, card, stake and budget."""

    agent_id: int
    owner: str
    card_uri: str
    stake: int
    unstaking: int
    unstake_at: int
    pending_slash: int
    budget: int
    min_stake: int

    @property
    def operating(self) -> bool:
        """Whether its keys may pay (stake at least the minimum)."""
        return self.stake >= self.min_stake


class AgentVaultClient:
    """One deployment's AgentVault."""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        """Use the vault of ``deployment`` through ``client``."""
        self.client = client
        self.deployment = deployment
        self.contract = named_contract(client, deployment, "AgentVault")
        self.token = named_contract(client, deployment, "OpenToken")
        self.market = named_contract(client, deployment, "InferenceMarket")
        self.registry = named_contract(client, deployment, "ModelRegistry")

    @property
    def address(self) -> str:
        """The vault's address."""
        return self.contract.address

    @property
    def chain_id(self) -> int:
        """The chain the vault lives on."""
        return self.client.chain_id

    # ------------------------------------------------------------------ writes

    def register(self, owner: LocalAccount, card_uri: str) -> int:
        """Register an agent with its card URI; returns the agent id."""
        receipt = self.client.send(self.contract.functions.register(card_uri), owner, "register agent")
        return int(events_of(self.contract, "AgentRegistered", receipt)[0]["agentId"])

    def stake(self, owner: LocalAccount, agent_id: int, amount: int) -> None:
        """Add ``amount`` OPEN to the agent's stake."""
        self._check_owner(owner, agent_id)
        ensure_allowance(self.client, self.token, owner, self.address, amount)
        self.client.send(self.contract.functions.stake(agent_id, amount), owner, "stake")

    def request_unstake(self, owner: LocalAccount, agent_id: int, amount: int) -> int:
        """Start the cooldown for ``amount``; returns when it can be withdrawn (unix seconds)."""
        self._check_owner(owner, agent_id)
        status = self.status(agent_id)
        if amount <= 0 or amount > status.stake:
            raise UserError(f"agent {agent_id} has {status.stake} wei staked; cannot unstake {amount}")
        receipt = self.client.send(self.contract.functions.requestUnstake(agent_id, amount), owner, "request unstake")
        return int(events_of(self.contract, "UnstakeRequested", receipt)[0]["availableAt"])

    def withdraw_stake(self, owner: LocalAccount, agent_id: int) -> int:
        """Withdraw the unstaked OPEN after the cooldown; returns the amount."""
        self._check_owner(owner, agent_id)
        status = self.status(agent_id)
        if status.unstaking == 0:
            raise UserError(f"agent {agent_id} has nothing unstaking (request it first with `agent unstake`)")
        if status.pending_slash:
            raise UserError(f"agent {agent_id} has a pending slash of {status.pending_slash} wei; stake is locked")
        if time.time() < status.unstake_at and self._chain_time() < status.unstake_at:
            raise UserError(f"agent {agent_id}'s unstake cooldown ends at unix time {status.unstake_at}")
        self.client.send(self.contract.functions.withdrawStake(agent_id), owner, "withdraw stake")
        return status.unstaking

    def deposit(self, sender: LocalAccount, agent_id: int, amount: int) -> None:
        """Add ``amount`` OPEN to the agent's budget."""
        self._check_agent(agent_id)
        ensure_allowance(self.client, self.token, sender, self.address, amount)
        self.client.send(self.contract.functions.deposit(agent_id, amount), sender, "fund agent")

    def withdraw(self, owner: LocalAccount, agent_id: int, amount: int) -> None:
        """Send ``amount`` of unspent budget back to the owner."""
        self._check_owner(owner, agent_id)
        budget = self.status(agent_id).budget
        if amount <= 0 or amount > budget:
            raise UserError(f"agent {agent_id}'s budget is {budget} wei; cannot withdraw {amount}")
        self.client.send(self.contract.functions.withdraw(agent_id, amount), owner, "withdraw budget")

    def grant(
        self,
        owner: LocalAccount,
        agent_id: int,
        key: str,
        *,
        models: list[int],
        max_price_per_call: int,
        period_s: int,
        period_cap: int,
        total_cap: int,
        expiry: int,
    ) -> None:
        """Grant a new session key (a key is granted once, ever)."""
        self._check_owner(owner, agent_id)
        if not models:
            raise UserError("a session key needs at least one model id (--models)")
        if self.session_key(key).agent_id:
            raise UserError(f"{key} was already granted as a session key (keys are never reused; make a new one)")
        fn = self.contract.functions.grant(
            agent_id, Web3.to_checksum_address(key), max_price_per_call, expiry, period_s, period_cap, total_cap, models
        )
        self.client.send(fn, owner, "grant session key")

    def revoke(self, owner: LocalAccount, key: str) -> int:
        """Revoke a session key for good; returns its agent id."""
        state = self.session_key(key)
        if not state.agent_id:
            raise UserError(f"{key} is not a session key of this vault")
        self._check_owner(owner, state.agent_id)
        if state.revoked:
            raise UserError(f"{key} is already revoked")
        self.client.send(self.contract.functions.revoke(Web3.to_checksum_address(key)), owner, "revoke session key")
        return state.agent_id

    # ------------------------------------------------------------------- reads

    def status(self, agent_id: int) -> AgentStatus:
        """The agent's owner, card, stake and budget."""
        self._check_agent(agent_id)
        f = self.contract.functions
        agent = self.client.call(f.getAgent(agent_id))
        return AgentStatus(
            agent_id=agent_id,
            owner=agent.owner,
            card_uri=agent.cardURI,
            stake=self.client.call(f.stakeOf(agent_id)),
            unstaking=self.client.call(f.unstakingOf(agent_id)),
            unstake_at=self.client.call(f.unstakeAt(agent_id)),
            pending_slash=self.client.call(f.pendingSlash(agent_id)),
            budget=self.client.call(f.budgetOf(agent_id)),
            min_stake=self.client.call(f.minStake()),
        )

    def session_key(self, key: str) -> SessionKeyState:
        """A session key's caps and spending (``agent_id`` 0 for an unknown key)."""
        k = self.client.call(self.contract.functions.sessionKey(Web3.to_checksum_address(key)))
        return SessionKeyState(
            key=Web3.to_checksum_address(key),
            agent_id=k.agentId,
            max_price_per_call=k.maxPricePerCall,
            expiry=k.expiry,
            period_length=k.periodLength,
            period_cap=k.periodCap,
            total_cap=k.totalCap,
            revoked=k.revoked,
            total_spent=k.totalSpent,
            period_spent=k.periodSpent,
            period=k.period,
        )

    def allowed(self, key: str, model_id: int) -> bool:
        """Whether ``key`` may pay for ``model_id``."""
        return bool(self.client.call(self.contract.functions.allowedModel(Web3.to_checksum_address(key), model_id)))

    def key_events(self, key: str) -> list[dict[str, Any]]:
        """Every ``SessionPaid`` of ``key`` (request id, model, fee), oldest first."""
        logs = self.contract.events.SessionPaid().get_logs(
            argument_filters={"key": Web3.to_checksum_address(key)}, from_block=self.deployment.block_number
        )
        return [dict(e["args"]) for e in logs]

    def _chain_time(self) -> int:
        return int(self.client.block("latest")["timestamp"])

    def _check_agent(self, agent_id: int) -> None:
        count = self.client.call(self.contract.functions.agentCount())
        if not 0 < agent_id <= count:
            raise UserError(f"agent {agent_id} does not exist (agents: 1..{count})" if count else "no agents yet")

    def _check_owner(self, owner: LocalAccount, agent_id: int) -> None:
        self._check_agent(agent_id)
        actual = self.client.call(self.contract.functions.getAgent(agent_id)).owner
        if actual.lower() != owner.address.lower():
            raise UserError(f"agent {agent_id} is owned by {actual}, not {owner.address}")
