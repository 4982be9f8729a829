"""Local spending checks: refuse a call before it would exceed any cap the vault enforces.

The vault refuses such a payment anyway; checking first means the agent never signs an authorization the
chain would reject, and says which cap is in the way.
"""

from __future__ import annotations

import time

from attribution_oracle.agent.vault import AgentStatus, SessionKeyState
from attribution_oracle.errors import UserError

__all__ = ["BudgetExceededError", "check_call"]


class BudgetExceededError(UserError):
    """A call the agent refuses locally: it would exceed a cap (or the key can no longer pay)."""

    def __init__(self, message: str, cap: str) -> None:
        super().__init__(message)
        self.cap = cap


def check_call(
    key: SessionKeyState, agent: AgentStatus, model_allowed: bool, amount: int, now: float | None = None
) -> None:
    """Raise :class:`BudgetExceededError` unless ``key`` may pay ``amount`` for a call right now."""
    now = time.time() if now is None else now
    if not key.agent_id:
        raise BudgetExceededError(f"{key.key} is not a session key of this vault", "unknown_key")
    if key.revoked:
        raise BudgetExceededError("the session key was revoked", "revoked")
    if now >= key.expiry:
        raise BudgetExceededError("the session key has expired", "expired")
    if not model_allowed:
        raise BudgetExceededError("the model is not on the session key's allow-list", "model")
    if amount > key.max_price_per_call:
        raise BudgetExceededError(
            f"the call may cost {amount} wei, above the key's maximum per call {key.max_price_per_call}", "per_call"
        )
    if amount > key.period_remaining:
        raise BudgetExceededError(
            f"the call may cost {amount} wei but only {key.period_remaining} wei remain in this period", "period"
        )
    if amount > key.total_remaining:
        raise BudgetExceededError(
            f"the call may cost {amount} wei but only {key.total_remaining} wei remain of the total cap", "total"
        )
    if amount > agent.budget:
        raise BudgetExceededError(f"the call may cost {amount} wei but the agent's budget is {agent.budget}", "budget")
    if not agent.operating:
        raise BudgetExceededError("the agent's stake is below the vault's minimum", "stake")
