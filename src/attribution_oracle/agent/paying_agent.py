"""``Agent``: an AI agent that pays for its own model calls over x402 from its vault, within its caps.

```python
agent = Agent(session_key, "http://127.0.0.1:8556", AgentVaultClient(chain_client, deployment))
answer = agent.complete(1, "When should I first inspect a hive in spring?", max_tokens=32)
print(answer.text, answer.request_id, agent.spent, agent.remaining())
```

Each call is sent unpaid; the server answers 402 with an x402 ``PAYMENT-REQUIRED`` offer; the agent checks the
offer against its caps (refusing locally with :class:`BudgetExceededError` before anything is signed), signs an
AgentVault ``Payment`` with its session key through the x402 package's client and our ``agent-vault`` scheme,
and retries with ``PAYMENT-SIGNATURE``. The server settles on-chain and serves; ``PAYMENT-RESPONSE`` carries the
transaction hash and the market request id.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace

import httpx
from eth_account.signers.local import LocalAccount
from x402 import x402ClientSync
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.schemas import PaymentRequirements

from attribution_oracle.agent.budget import BudgetExceededError, check_call
from attribution_oracle.agent.scheme import PAYMENT_REQUIRED_HEADER, SCHEME, VaultSchemeClient
from attribution_oracle.agent.vault import AgentStatus, AgentVaultClient, SessionKeyState
from attribution_oracle.errors import UserError
from attribution_oracle.serving.payments import prompt_hash

__all__ = ["Agent", "AgentCall", "AgentError", "BudgetExceededError"]


class AgentError(UserError):
    """A call the server refused or could not serve."""


@dataclass(frozen=True)
class AgentCall:
    """One paid call: what was asked, what came back, what it was authorized to cost."""

    model_id: int
    prompt: str
    text: str
    request_id: int
    tx_hash: str
    authorized: int
    usage: dict
    chat: bool = False


@dataclass
class Agent:
    """An agent that pays per call from its AgentVault through one session key."""

    session_key: LocalAccount
    server: str
    vault: AgentVaultClient
    timeout_s: float = 120.0
    refresh_s: float = 10.0
    calls: list[AgentCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = self.server.rstrip("/")
        self._http = httpx.Client(timeout=self.timeout_s)
        self._x402 = x402ClientSync()
        self._x402.register(f"eip155:{self.vault.chain_id}", VaultSchemeClient(self.session_key, self.vault.chain_id))
        self._x402.set_spend_controls(False)  # the caps that matter are the vault's, checked in _check_offer
        self._ledger: tuple[float, SessionKeyState, AgentStatus, float] | None = None  # read at, key, agent, offset
        self._allowed: dict[int, bool] = {}

    # ------------------------------------------------------------------ calls

    def complete(self, model_id: int, prompt: str, max_tokens: int = 32, temperature: float = 0.0) -> AgentCall:
        """A paid ``/v1/completions`` call."""
        body = {"model": str(model_id), "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}
        return self._call("/v1/completions", body, model_id, prompt, chat=False)

    def chat(self, model_id: int, messages: list[dict], max_tokens: int = 32, temperature: float = 0.0) -> AgentCall:
        """A paid ``/v1/chat/completions`` call (the prompt paid for is the server's chat-template rendering)."""
        rendered = self._post("/v1/chat/render", {"messages": messages}).json()["prompt"]
        body = {"model": str(model_id), "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        return self._call("/v1/chat/completions", body, model_id, rendered, chat=True)

    # ---------------------------------------------------------------- budget

    @property
    def spent(self) -> int:
        """What this agent's calls took from the vault budget (authorized maxima; unused parts go to the owner)."""
        return sum(c.authorized for c in self.calls)

    def remaining(self) -> dict[str, int]:
        """What the key may still spend: per call, this period, in total, and the agent's vault budget."""
        key = self.vault.session_key(self.session_key.address)
        agent = self.vault.status(key.agent_id) if key.agent_id else None
        return {
            "per_call": key.max_price_per_call,
            "period": key.period_remaining,
            "total": key.total_remaining,
            "budget": agent.budget if agent else 0,
        }

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- internals

    def _post(self, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
        try:
            return self._http.post(self.server + path, json=body, headers=headers or {})
        except httpx.HTTPError as exc:
            raise AgentError(f"cannot reach {self.server}: {exc}") from exc

    def _check_offer(self, requirements: PaymentRequirements, model_id: int, prompt: str) -> int:
        if requirements.scheme != SCHEME or requirements.network != f"eip155:{self.vault.chain_id}":
            raise AgentError(f"the server offers {requirements.scheme} on {requirements.network}, not {SCHEME}")
        extra = requirements.extra
        if str(extra.get("vault", "")).lower() != self.vault.address.lower():
            raise AgentError(f"the server wants payment through vault {extra.get('vault')}, not ours")
        if requirements.pay_to.lower() != self.vault.market.address.lower():
            raise AgentError("the server's payTo is not this deployment's InferenceMarket")
        if int(extra.get("modelId", -1)) != model_id:
            raise AgentError(f"the offer is for model {extra.get('modelId')}, not {model_id}")
        if str(extra.get("inputHash", "")).lower() != "0x" + prompt_hash(prompt).hex():
            raise AgentError("the offer is for another prompt (its inputHash is not the sha256 of ours)")
        amount = int(requirements.amount)
        try:
            self._check_locally(model_id, amount, refresh=False)
        except BudgetExceededError:
            self._check_locally(model_id, amount, refresh=True)  # the chain may know better (a deposit, a period)
        return amount

    def _check_locally(self, model_id: int, amount: int, refresh: bool) -> None:
        """Check against the local ledger: the vault's state, re-read every ``refresh_s``, plus our own spends."""
        if refresh or self._ledger is None or time.monotonic() - self._ledger[0] > self.refresh_s:
            key = self.vault.session_key(self.session_key.address)
            if not key.agent_id:
                raise BudgetExceededError(
                    f"{self.session_key.address} is not a session key of this vault", "unknown_key"
                )
            agent = self.vault.status(key.agent_id)
            offset = int(self.vault.client.block("latest")["timestamp"]) - time.time()
            self._ledger = (time.monotonic(), key, agent, offset)
        _, key, agent, offset = self._ledger
        now = time.time() + offset
        if key.period_length and int(now) // key.period_length != key.period:  # a new period began
            key = replace(key, period=int(now) // key.period_length, period_spent=0)
            self._ledger = (self._ledger[0], key, agent, offset)
        if model_id not in self._allowed:  # allow-lists never change; revocation is in the key state
            self._allowed[model_id] = self.vault.allowed(key.key, model_id)
        check_call(key, agent, self._allowed[model_id], amount, now=now)

    def _record_spend(self, amount: int) -> None:
        if self._ledger is None:
            return
        at, key, agent, offset = self._ledger
        key = replace(key, total_spent=key.total_spent + amount, period_spent=key.period_spent + amount)
        self._ledger = (at, key, replace(agent, budget=agent.budget - amount), offset)

    def _call(self, path: str, body: dict, model_id: int, prompt: str, chat: bool) -> AgentCall:
        first = self._post(path, body)
        if first.status_code != 402:
            raise AgentError(f"expected a 402 payment offer, got HTTP {first.status_code}: {first.text[:200]}")
        header = first.headers.get(PAYMENT_REQUIRED_HEADER)
        if not header:
            raise AgentError(f"the server's 402 has no {PAYMENT_REQUIRED_HEADER} header (no x402 offer)")
        required = decode_payment_required_header(header)
        offer = next((r for r in required.accepts if r.scheme == SCHEME), None)
        if offer is None:
            raise AgentError(f"the server offers no {SCHEME} payment")
        amount = self._check_offer(offer, model_id, prompt)
        required.accepts = [offer]
        payload = self._x402.create_payment_payload(required)
        paid = self._post(path, body, {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)})
        if paid.status_code != 200:
            raise AgentError(f"the paid call failed with HTTP {paid.status_code}: {_reason(paid)}")
        settle = decode_payment_response_header(paid.headers["PAYMENT-RESPONSE"])
        data = paid.json()
        choice = data["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        call = AgentCall(
            model_id=model_id,
            prompt=prompt,
            text=text,
            request_id=int(data["request_id"]),
            tx_hash=settle.transaction,
            authorized=int(settle.amount or amount),
            usage=data.get("usage", {}),
            chat=chat,
        )
        self.calls.append(call)
        self._record_spend(call.authorized)
        return call


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return response.text[:200]
