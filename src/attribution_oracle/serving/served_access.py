"""Who may read the served-record log (``GET /v1/served``): the oracle nodes, nobody else.

Paid prompts and their outputs are private to the payer, the operator and the oracles. A request is let in when
it carries either

- a signed query from an on-chain oracle signer: headers ``X-Oracle-Signer``, ``X-Oracle-Timestamp`` and
  ``X-Oracle-Signature``, an EIP-191 ``personal_sign`` of ``served_query_message(...)`` (chain id, the query,
  the timestamp) by an address the RewardDistributor lists as a signer (``isSigner``), the timestamp within
  ``MAX_SKEW_S`` of the server's clock; or
- ``Authorization: Bearer <token>`` where the operator configured the token (``$ATTRIBUTION_SERVED_TOKEN``).

Everything else gets 401. Signer checks are cached for ``SIGNER_CACHE_S`` seconds.
"""

from __future__ import annotations

import hmac
import os
import time

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

__all__ = ["MAX_SKEW_S", "ServedAccess", "served_query_headers", "served_query_message"]

MAX_SKEW_S = 120
SIGNER_CACHE_S = 30.0
TOKEN_ENV = "ATTRIBUTION_SERVED_TOKEN"


def served_query_message(chain_id: int, after: int, limit: int, timestamp: int) -> str:
    """The text an oracle signer signs to read ``/v1/served?after=&limit=``."""
    return f"attribution-oracle: GET /v1/served chain={chain_id} after={after} limit={limit} ts={timestamp}"


def served_query_headers(signer: LocalAccount, chain_id: int, after: int, limit: int) -> dict[str, str]:
    """The headers of a signed ``/v1/served`` query (what an oracle node sends)."""
    timestamp = int(time.time())
    message = encode_defunct(text=served_query_message(chain_id, after, limit, timestamp))
    signature = signer.sign_message(message).signature
    return {
        "X-Oracle-Signer": signer.address,
        "X-Oracle-Timestamp": str(timestamp),
        "X-Oracle-Signature": "0x" + bytes(signature).hex(),
    }


class ServedAccess:
    """Decides whether a ``/v1/served`` request may read the log."""

    def __init__(self, client, deployment, token: str | None = None) -> None:
        """Check signers against ``deployment``'s RewardDistributor; ``token`` defaults to $ATTRIBUTION_SERVED_TOKEN."""
        self.client = client
        self.chain_id = client.chain_id
        self.distributor = client.contract(deployment, "RewardDistributor")
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
        self._signers: dict[str, tuple[bool, float]] = {}

    def _is_signer(self, address: str) -> bool:
        cached = self._signers.get(address.lower())
        if cached is not None and time.monotonic() - cached[1] < SIGNER_CACHE_S:
            return cached[0]
        allowed = bool(self.client.call(self.distributor.functions.isSigner(address)))
        self._signers[address.lower()] = (allowed, time.monotonic())
        return allowed

    def allowed(self, headers, after: int, limit: int) -> tuple[bool, str]:
        """``(True, who)`` if the request may read, else ``(False, why)``."""
        auth = headers.get("authorization", "")
        if self.token and auth.startswith("Bearer "):
            if hmac.compare_digest(auth.removeprefix("Bearer ").strip(), self.token):
                return True, "operator token"
            return False, "wrong token"
        signer, stamp, signature = (headers.get(f"x-oracle-{k}") for k in ("signer", "timestamp", "signature"))
        if not (signer and stamp and signature):
            return False, "sign the query as an oracle signer (X-Oracle-* headers) or send the operator token"
        try:
            timestamp = int(stamp)
            message = encode_defunct(text=served_query_message(self.chain_id, after, limit, timestamp))
            recovered = Account.recover_message(message, signature=bytes.fromhex(signature.removeprefix("0x")))
        except (ValueError, TypeError):
            return False, "malformed signature"
        if abs(time.time() - timestamp) > MAX_SKEW_S:
            return False, "stale timestamp"
        if recovered.lower() != signer.lower():
            return False, "the signature is not the signer's"
        if not self._is_signer(recovered):
            return False, f"{recovered} is not an oracle signer"
        return True, recovered
