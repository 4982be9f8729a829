"""Talk to peer nodes over HTTP: push and pull signatures, fetch reports by URI. Failures are not fatal.

Pushes are authenticated: the body is sent with ``X-Oracle-Signer``, ``X-Oracle-Timestamp`` and
``X-Oracle-Signature`` (an EIP-191 signature by the pushing node's oracle key over the chain id, the timestamp and
keccak256 of the body), and a node accepts a push only from a member of the on-chain oracle set
(``verify_push``), within ``MAX_SKEW_S`` seconds.
"""

from __future__ import annotations

import json
import time

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from attribution_oracle.oracle.logs import log
from attribution_oracle.store.digests import CONTENT_URI_SCHEME

TIMEOUT_S = 2.0
MAX_SKEW_S = 120


def _push_message(chain_id: int, timestamp: int, body: bytes) -> str:
    return f"attribution-oracle: POST /v1/signatures chain={chain_id} ts={timestamp} body=0x{keccak(body).hex()}"


def push_headers(signer: LocalAccount, chain_id: int, body: bytes) -> dict[str, str]:
    """The headers that authenticate ``body`` as pushed by ``signer``."""
    timestamp = int(time.time())
    signature = signer.sign_message(encode_defunct(text=_push_message(chain_id, timestamp, body))).signature
    return {
        "content-type": "application/json",
        "X-Oracle-Signer": signer.address,
        "X-Oracle-Timestamp": str(timestamp),
        "X-Oracle-Signature": "0x" + bytes(signature).hex(),
    }


def verify_push(headers, body: bytes, chain_id: int, oracle_set: list[str]) -> str | None:
    """Why a push is refused (None when it comes, fresh, from a member of ``oracle_set``)."""
    signer, stamp, signature = (headers.get(f"x-oracle-{k}") for k in ("signer", "timestamp", "signature"))
    if not (signer and stamp and signature):
        return "unauthenticated push: X-Oracle-Signer/-Timestamp/-Signature required"
    try:
        timestamp = int(stamp)
        recovered = Account.recover_message(
            encode_defunct(text=_push_message(chain_id, timestamp, body)),
            signature=bytes.fromhex(signature.removeprefix("0x")),
        )
    except (ValueError, TypeError):
        return "malformed push signature"
    if abs(time.time() - timestamp) > MAX_SKEW_S:
        return "stale push"
    if recovered.lower() != signer.lower() or recovered.lower() not in oracle_set:
        return "the pusher is not an oracle signer"
    return None


class Peers:
    """The other nodes of the oracle set, by base URL."""

    def __init__(
        self,
        urls: list[str],
        timeout_s: float = TIMEOUT_S,
        signer: LocalAccount | None = None,
        chain_id: int | None = None,
    ) -> None:
        """``urls``: each peer's ``http://host:port``; pushes are signed by ``signer`` (see the module docstring)."""
        self.urls = [u.rstrip("/") for u in urls]
        self.client = httpx.Client(timeout=timeout_s)
        self.signer = signer
        self.chain_id = chain_id

    def push(self, signature: dict) -> int:
        """POST a signature to every peer; returns how many accepted it."""
        accepted = 0
        body = json.dumps(signature).encode()
        headers = {"content-type": "application/json"}
        if self.signer is not None and self.chain_id is not None:
            headers = push_headers(self.signer, self.chain_id, body)
        for url in self.urls:
            try:
                accepted += self.client.post(f"{url}/v1/signatures", content=body, headers=headers).status_code == 200
            except httpx.HTTPError as exc:
                log("peer unreachable", peer=url, error=type(exc).__name__)
        return accepted

    def pull(self, epoch: int) -> list[dict]:
        """Every signature the peers hold for ``epoch``."""
        found: list[dict] = []
        for url in self.urls:
            try:
                response = self.client.get(f"{url}/v1/signatures", params={"epoch": epoch})
                if response.status_code == 200:
                    found += response.json()["signatures"]
            except (httpx.HTTPError, ValueError, KeyError):
                continue
        return found

    def report(self, uri: str) -> bytes | None:
        """A report's JSON from the first peer that has it (the caller checks the digest)."""
        digest = uri.removeprefix(CONTENT_URI_SCHEME)
        for url in self.urls:
            try:
                response = self.client.get(f"{url}/v1/reports/{digest}")
                if response.status_code == 200:
                    return response.content
            except httpx.HTTPError:
                continue
        return None

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
