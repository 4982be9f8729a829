"""The agent SDK: an agent with a stake, a budget and session keys in an AgentVault, paying per call over x402.

``Agent`` (calls), ``AgentVaultClient`` (the vault's owner-side operations and state), ``check_call`` (the local
cap check), ``PaymentAuthorization`` and the EIP-712 helpers.
"""

from attribution_oracle.agent.budget import BudgetExceededError, check_call
from attribution_oracle.agent.paying_agent import Agent, AgentCall, AgentError
from attribution_oracle.agent.vault import AgentStatus, AgentVaultClient, SessionKeyState
from attribution_oracle.agent.vault_typed_data import PaymentAuthorization, sign_payment

__all__ = [
    "Agent",
    "AgentCall",
    "AgentError",
    "AgentStatus",
    "AgentVaultClient",
    "BudgetExceededError",
    "PaymentAuthorization",
    "SessionKeyState",
    "check_call",
    "sign_payment",
]
