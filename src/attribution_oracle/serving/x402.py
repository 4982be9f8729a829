"""x402 v2 at the server: ``PAYMENT-REQUIRED`` challenges, ``PAYMENT-SIGNATURE`` retries, ``PAYMENT-RESPONSE``.

An unpaid completion (no ``request_id``) gets HTTP 402 with a ``PAYMENT-REQUIRED`` header (the ``x402`` package's
``PaymentRequired``, base64 JSON) offering one option of our scheme ``agent-vault`` on ``eip155:<chain id>``:
asset OPEN, ``amount`` the most the call can cost (the flat price, or for a per-token model the flat fee plus
the prompt's tokens and ``max_tokens`` output tokens at the model's rates), ``payTo`` the InferenceMarket, and in
``extra`` the AgentVault, the server address that will submit the payment, the model id and the prompt's
``inputHash``. The client (a session key) signs an AgentVault ``Payment`` authorization for exactly that and
retries with ``PAYMENT-SIGNATURE``. The server acts as its own facilitator: it checks the payload (scheme,
network, asset, payTo, server, model, prompt, amount, deadline, signature), settles on-chain with
``AgentVault.payWithAuthorization`` (the vault enforces the key's caps; the market escrows the fee), serves,
and answers with ``PAYMENT-RESPONSE`` (a ``SettleResponse`` carrying the transaction hash and request id).
The x402 package's built-in EVM schemes (EIP-3009 ``exact``, Permit2 ``upto``) move tokens to ``payTo``
directly and cannot open a market request, so our scheme lives inside its framework instead: the types and
header codecs here, and :class:`VaultSchemeClient` (a ``SchemeNetworkClient``) for the package's clients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD
from x402.http.utils import (
    decode_payment_signature_header,
    encode_payment_required_header,
    encode_payment_response_header,
)
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo, SettleResponse

from attribution_oracle.agent.scheme import (
    PAYMENT_REQUIRED_HEADER,
    PAYMENT_RESPONSE_HEADER,
    PAYMENT_SIGNATURE_HEADER,
    SCHEME,
    VaultSchemeClient,
)
from attribution_oracle.agent.vault import named_contract
from attribution_oracle.agent.vault_typed_data import PaymentAuthorization, recover_payment_signer
from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient, revert_reason
from attribution_oracle.serving.facilitator import FacilitatorSender
from attribution_oracle.serving.payments import PaymentRequiredError, prompt_hash
from attribution_oracle.settlement.report_typed_data import Signature

__all__ = [
    "PAYMENT_REQUIRED_HEADER",
    "PAYMENT_RESPONSE_HEADER",
    "PAYMENT_SIGNATURE_HEADER",
    "SCHEME",
    "VaultSchemeClient",
    "X402Gate",
    "X402Settlement",
    "max_charge",
]

TIMEOUT_S = 300
PRICE_TTL_S = 2.0


def max_charge(price: int, rates: dict, prompt_tokens: int, max_tokens: int) -> int:
    """The most a call can cost: the flat ``price``, or flat fee + prompt and ``max_tokens`` output at the rates."""
    if not rates["inputPer1k"] and not rates["outputPer1k"]:
        return price
    return rates["flatFee"] + prompt_tokens * rates["inputPer1k"] // 1000 + max_tokens * rates["outputPer1k"] // 1000


class X402PaymentError(PaymentRequiredError):
    """An x402 payment that cannot be accepted (HTTP 402 with a fresh ``PAYMENT-REQUIRED``)."""

    def __init__(self, message: str, code: str, required: PaymentRequired) -> None:
        super().__init__(message, code)
        self.required = required

    def headers(self) -> dict[str, str]:
        """The ``PAYMENT-REQUIRED`` header of the 402."""
        return {PAYMENT_REQUIRED_HEADER: encode_payment_required_header(self.required)}


@dataclass(frozen=True)
class X402Settlement:
    """A settled x402 payment: the market request it opened and the ``PAYMENT-RESPONSE`` header."""

    request_id: int
    tx_hash: str
    payer: str
    amount: int
    header: str


class X402Gate:
    """The server side of the ``agent-vault`` scheme for one deployment and one operator account."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        operator: LocalAccount,
        count_tokens: Callable[[str], int],
        send_lock: threading.Lock | None = None,
        facilitator: LocalAccount | None = None,
    ) -> None:
        """``count_tokens(prompt)`` must count input tokens as the served record will (the server's tokenizer).

        Settlements are submitted by ``facilitator`` (default: ``operator``, sharing ``send_lock`` with the
        markServed worker); an account of its own lets settlements pipeline without waiting for that worker.
        """
        self.client = client
        self.operator = facilitator or operator
        self.count_tokens = count_tokens
        shared = facilitator is None or facilitator.address == operator.address
        self.sender = FacilitatorSender(client, self.operator, send_lock if shared else None, shared=shared)
        self._pricing: dict[int, tuple[float, int, dict]] = {}
        self.chain_id = client.chain_id
        self.network = f"eip155:{self.chain_id}"
        self.vault = client.contract(deployment, "AgentVault")
        self.market = client.contract(deployment, "InferenceMarket")
        self.registry = named_contract(client, deployment, "ModelRegistry")
        self.token_address = deployment.contracts["OpenToken"].address

    def requirements(self, model_id: int, prompt: str, max_tokens: int) -> PaymentRequirements:
        """The one payment option for this call."""
        price, rates = self._price(model_id)
        amount = max_charge(price, rates, self.count_tokens(prompt), max_tokens)
        return PaymentRequirements(
            scheme=SCHEME,
            network=self.network,
            asset=self.token_address,
            amount=str(amount),
            pay_to=self.market.address,
            max_timeout_seconds=TIMEOUT_S,
            extra={
                "vault": self.vault.address,
                "server": self.operator.address,
                "modelId": str(model_id),
                "inputHash": "0x" + prompt_hash(prompt).hex(),
                "perToken": bool(rates["inputPer1k"] or rates["outputPer1k"]),
                "rates": {k: str(v) for k, v in rates.items()},
            },
        )

    def _price(self, model_id: int) -> tuple[int, dict]:
        """The model's price and token rates, re-read at most every PRICE_TTL_S (a payment made at an older
        price fails on-chain if the price rose: the market checks it against the authorized maximum)."""
        cached = self._pricing.get(model_id)
        if cached is None or time.monotonic() - cached[0] > PRICE_TTL_S:
            model = self.client.call(self.registry.functions.getModel(model_id))
            r = self.client.call(self.registry.functions.tokenRates(model_id))
            rates = {"inputPer1k": r.inputPer1k, "outputPer1k": r.outputPer1k, "flatFee": r.flatFee}
            cached = (time.monotonic(), model.price, rates)
            self._pricing[model_id] = cached
        return cached[1], cached[2]

    def payment_required(self, requirements: PaymentRequirements, url: str, error: str | None) -> PaymentRequired:
        """The x402 v2 ``PaymentRequired`` for one option."""
        return PaymentRequired(
            x402_version=2,
            error=error,
            resource=ResourceInfo(url=url, description="one paid completion", mime_type="application/json"),
            accepts=[requirements],
        )

    def challenge(self, model_id: int, prompt: str, max_tokens: int, url: str) -> X402PaymentError:
        """The 402 for an unpaid request."""
        required = self.payment_required(self.requirements(model_id, prompt, max_tokens), url, None)
        return X402PaymentError(
            f"payment required: sign an {SCHEME} authorization for the {PAYMENT_REQUIRED_HEADER} header's offer "
            f"and retry with {PAYMENT_SIGNATURE_HEADER}, or pay on-chain first with "
            "InferenceMarket.payForInference(modelId, sha256(prompt), maxFee) and send request_id",
            "missing_request_id",
            required,
        )

    def handle(self, header: str | None, model_id: int, prompt: str, max_tokens: int, url: str) -> X402Settlement:
        """Settle the request's ``PAYMENT-SIGNATURE``, or raise the 402 challenge when there is none."""
        if not header:
            raise self.challenge(model_id, prompt, max_tokens, url)
        return self.settle(header, model_id, prompt, max_tokens, url)

    def settle(self, header: str, model_id: int, prompt: str, max_tokens: int, url: str) -> X402Settlement:
        """Verify a ``PAYMENT-SIGNATURE`` for this call and settle it on-chain; raises :class:`X402PaymentError`."""
        wanted = self.requirements(model_id, prompt, max_tokens)

        def refuse(code: str, message: str) -> X402PaymentError:
            return X402PaymentError(message, code, self.payment_required(wanted, url, code))

        try:
            payload = decode_payment_signature_header(header)
        except Exception:  # noqa: BLE001 - any malformed header is the client's error
            raise refuse("invalid_payload", f"{PAYMENT_SIGNATURE_HEADER} is not a base64 x402 payload") from None
        if not isinstance(payload, PaymentPayload) or payload.x402_version != 2:
            raise refuse("invalid_x402_version", "only x402 v2 payloads are accepted")
        accepted = payload.accepted
        if accepted.scheme != SCHEME:
            raise refuse("unsupported_scheme", f"scheme {accepted.scheme!r} is not offered here (only {SCHEME})")
        if accepted.network != self.network:
            raise refuse("invalid_network", f"payment is for {accepted.network}, this server is on {self.network}")
        if (
            accepted.asset.lower() != self.token_address.lower()
            or accepted.pay_to.lower() != self.market.address.lower()
        ):
            raise refuse("invalid_payment_requirements", "payment is for another asset or market")
        try:
            auth = PaymentAuthorization.from_json(payload.payload["authorization"])
            raw = payload.payload["signature"]
            sig = Signature(auth.sessionKey, int(raw["v"]), bytes.fromhex(raw["r"][2:]), bytes.fromhex(raw["s"][2:]))
        except (KeyError, ValueError, TypeError, AttributeError):
            raise refuse("invalid_payload", "the payload needs an authorization and a signature {v, r, s}") from None
        if auth.server.lower() != self.operator.address.lower():
            raise refuse("wrong_server", f"the authorization is for server {auth.server}, not {self.operator.address}")
        if auth.modelId != model_id:
            raise refuse("model_mismatch", f"the authorization pays model {auth.modelId}, not model {model_id}")
        if auth.inputHash != prompt_hash(prompt):
            raise refuse("prompt_mismatch", "the authorization pays for another prompt (sha256 differs)")
        if auth.maxFee < int(wanted.amount):
            raise refuse(
                "insufficient_amount", f"the authorization allows {auth.maxFee} wei, the call needs {wanted.amount}"
            )
        if auth.deadline < int(time.time()):
            raise refuse("expired", "the authorization's deadline has passed")
        try:
            signer = recover_payment_signer(auth, self.chain_id, self.vault.address, sig)
        except Exception:  # noqa: BLE001 - malformed or non-canonical signature
            signer = None
        if signer is None or signer.lower() != auth.sessionKey.lower():
            raise refuse("invalid_signature", "the signature is not the session key's over this authorization")
        call = self.vault.functions.payWithAuthorization(auth.as_tuple(), sig.as_tuple())
        try:
            receipt = self.sender.send(call, "x402 settlement")
        except Exception as exc:  # noqa: BLE001 - the vault refused (caps, nonce, stake, budget) or the chain failed
            raise refuse("settlement_failed", f"settlement refused: {revert_reason(exc) or exc}") from None
        paid = self.market.events.InferencePaid().process_receipt(receipt, errors=DISCARD)
        request_id = int(paid[0]["args"]["requestId"])
        fee = int(paid[0]["args"]["fee"])
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        response = SettleResponse(
            success=True,
            payer=auth.sessionKey,
            transaction=tx_hash,
            network=self.network,
            amount=str(fee),
            extensions={"requestId": str(request_id)},
        )
        return X402Settlement(request_id, tx_hash, auth.sessionKey, fee, encode_payment_response_header(response))
