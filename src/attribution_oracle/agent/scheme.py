"""The ``agent-vault`` x402 scheme, client side: a session key signs an AgentVault ``Payment`` for an offer.

Registered with the x402 package's clients (``x402Client.register("eip155:<chain id>", VaultSchemeClient(...))``),
it turns a ``PAYMENT-REQUIRED`` offer into the ``PAYMENT-SIGNATURE`` payload our servers settle
(``serving.x402.X402Gate``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from x402.schemas import PaymentRequirements

from attribution_oracle.agent.vault_typed_data import PaymentAuthorization, sign_payment

__all__ = [
    "SCHEME",
    "PAYMENT_REQUIRED_HEADER",
    "PAYMENT_RESPONSE_HEADER",
    "PAYMENT_SIGNATURE_HEADER",
    "VaultSchemeClient",
]

SCHEME = "agent-vault"
PAYMENT_SIGNATURE_HEADER = "PAYMENT-SIGNATURE"
PAYMENT_REQUIRED_HEADER = "PAYMENT-REQUIRED"
PAYMENT_RESPONSE_HEADER = "PAYMENT-RESPONSE"


class VaultSchemeClient:
    """The ``agent-vault`` scheme for the x402 package's clients (``x402Client.register(network, scheme)``).

    Signs an AgentVault ``Payment`` authorization for exactly what the offer names; ``approve(requirements)``
    may refuse (raise) before anything is signed, e.g. to keep within the agent's caps.
    """

    scheme = SCHEME

    def __init__(
        self,
        session_key: LocalAccount,
        chain_id: int,
        approve: Callable[[PaymentRequirements], None] | None = None,
    ) -> None:
        """Sign with ``session_key`` for vaults on ``chain_id``."""
        self.session_key = session_key
        self.chain_id = chain_id
        self.approve = approve or (lambda requirements: None)

    def create_payment_payload(self, requirements: PaymentRequirements, context: Any = None) -> dict[str, Any]:
        """The inner payload: ``{"authorization": {...}, "signature": {"v", "r", "s"}}``."""
        del context
        if requirements.network != f"eip155:{self.chain_id}":
            raise ValueError(f"offer is for {requirements.network}, this key signs for eip155:{self.chain_id}")
        self.approve(requirements)
        extra = requirements.extra
        auth = PaymentAuthorization(
            sessionKey=self.session_key.address,
            server=Web3.to_checksum_address(extra["server"]),
            modelId=int(extra["modelId"]),
            inputHash=bytes.fromhex(str(extra["inputHash"]).removeprefix("0x")),
            maxFee=int(requirements.amount),
            nonce=secrets.randbits(256),
            deadline=int(time.time()) + int(requirements.max_timeout_seconds),
        )
        sig = sign_payment(auth, self.chain_id, Web3.to_checksum_address(extra["vault"]), self.session_key)
        return {
            "authorization": auth.to_json(),
            "signature": {"v": sig.v, "r": "0x" + sig.r.hex(), "s": "0x" + sig.s.hex()},
        }
