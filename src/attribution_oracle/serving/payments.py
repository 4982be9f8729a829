"""Checking that a request was paid on-chain for this model and this prompt, and not served yet.

A completion request carries the ``requestId`` of an ``InferenceMarket.InferencePaid`` event. It is served
only if that event exists, its ``modelId`` is the requested model, its ``inputHash`` is the sha256 of the
prompt's UTF-8 bytes, and the market still holds the request as paid (not served, not refunded). The
``Receipt`` struct that ``markServed`` needs is rebuilt from the request's ``InferencePaid`` and ``FeeSplit``
events.

Service window: ``markServed`` holds only until ``paidAt + serviceWindow`` (after it the payer may refund), so
a request is refused (``service_window_closing``) when the chain's latest block time plus a margin (time to
generate and to get ``markServed`` mined: ``service_margin_s``, at most a quarter of the window) is past that
deadline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.errors import UserError

__all__ = ["Payment", "PaymentGate", "PaymentRequiredError", "prompt_hash"]

STATUS_PAID, STATUS_SERVED, STATUS_REFUNDED = 1, 2, 3
#: Seconds of the service window kept free for generating and mining ``markServed``.
DEFAULT_SERVICE_MARGIN_S = 120


def prompt_hash(prompt: str) -> bytes:
    """The on-chain ``inputHash`` of a prompt: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(prompt.encode("utf-8")).digest()


class PaymentRequiredError(UserError):
    """The request is not paid for what it asks (HTTP 402); ``code`` says why."""

    def __init__(self, message: str, code: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id

    def body(self) -> dict:
        """The JSON body of the 402 response."""
        return {
            "error": {
                "message": str(self),
                "type": "payment_required",
                "code": self.code,
                "request_id": self.request_id,
            }
        }


@dataclass(frozen=True)
class Payment:
    """A verified payment: the request, who paid, and the receipt ``markServed`` takes."""

    request_id: int
    model_id: int
    payer: str
    fee: int
    epoch: int
    input_hash: bytes
    receipt: dict
    meter: dict | None = None  # the per-token terms (``MeteredPaid``) of a request paid up to a maximum


class PaymentGate:
    """Verifies payments against the InferenceMarket of one deployment."""

    def __init__(
        self, client: ChainClient, deployment: Deployment, service_margin_s: int = DEFAULT_SERVICE_MARGIN_S
    ) -> None:
        """Check payments on ``deployment`` through ``client``; refuse within ``service_margin_s`` of the deadline."""
        self.client = client
        self.deployment = deployment
        self.market = client.contract(deployment, "InferenceMarket")
        self.service_margin_s = service_margin_s
        self._window: int | None = None

    def service_deadline(self, receipt: dict) -> int:
        """The last timestamp at which ``markServed`` still accepts this receipt (``paidAt + serviceWindow``)."""
        if self._window is None:
            self._window = int(self.client.call(self.market.functions.serviceWindow()))
        return int(receipt["paidAt"]) + self._window

    def chain_time(self) -> int:
        """The latest block's timestamp (the clock ``markServed`` and ``refund`` are judged by)."""
        with self.client.rpc():
            return int(self.client.w3.eth.get_block("latest")["timestamp"])

    def status(self, request_id: int) -> int:
        """0 unknown, 1 paid, 2 served, 3 refunded."""
        return int(self.client.call(self.market.functions.requestStatus(request_id)))

    def _logs(self, event: str, request_id: int) -> list:
        with self.client.rpc():
            return self.market.events[event].get_logs(
                argument_filters={"requestId": request_id}, from_block=self.deployment.block_number
            )

    def payment(self, request_id: int) -> Payment:
        """The payment of ``request_id`` (its events), without checking the model, prompt or status."""
        paid = self._logs("InferencePaid", request_id)
        split = self._logs("FeeSplit", request_id)
        if not paid or not split:
            raise PaymentRequiredError(
                f"request {request_id} was never paid: no InferencePaid event on the InferenceMarket",
                "unpaid",
                request_id,
            )
        p, s = paid[0]["args"], split[0]["args"]
        receipt = {
            "requestId": request_id,
            "payer": p["payer"],
            "modelId": p["modelId"],
            "modelOwner": s["modelOwner"],
            "fee": p["fee"],
            "paidAt": s["paidAt"],
            "split": {
                "protocol": s["protocolFee"],
                "owner": s["ownerAmount"],
                "datanetOwners": s["datanetOwnersAmount"],
                "contributors": s["contributorsAmount"],
            },
        }
        metered = self._logs("MeteredPaid", request_id)
        meter = None
        if metered:
            m = metered[0]["args"]
            meter = {k: m[k] for k in ("inputPer1k", "outputPer1k", "flatFee", "protocolBps", "ownerBps")}
            meter["datanetOwnersBps"] = m["datanetOwnersBps"]
        return Payment(
            request_id, p["modelId"], p["payer"], p["fee"], p["epoch"], bytes(p["inputHash"]), receipt, meter
        )

    def check(self, request_id: int, model_id: int, prompt: str) -> Payment:
        """The payment of ``request_id`` if it pays for ``prompt`` on ``model_id`` and awaits service."""
        payment = self.payment(request_id)
        if payment.model_id != model_id:
            raise PaymentRequiredError(
                f"request {request_id} paid for model {payment.model_id}, not model {model_id}",
                "model_mismatch",
                request_id,
            )
        expected = payment.input_hash
        actual = prompt_hash(prompt)
        if expected != actual:
            raise PaymentRequiredError(
                f"request {request_id} paid for a prompt with sha256 0x{expected.hex()}, but this prompt's sha256 "
                f"is 0x{actual.hex()} (the hash covers the prompt's exact UTF-8 bytes; for chat, the rendered "
                "chat template)",
                "prompt_mismatch",
                request_id,
            )
        status = self.status(request_id)
        if status == STATUS_SERVED:
            raise PaymentRequiredError(f"request {request_id} was already served", "already_served", request_id)
        if status == STATUS_REFUNDED:
            raise PaymentRequiredError(f"request {request_id} was refunded to its payer", "refunded", request_id)
        if status != STATUS_PAID:
            raise PaymentRequiredError(f"request {request_id} is not awaiting service", "unpaid", request_id)
        deadline = self.service_deadline(payment.receipt)
        margin = min(self.service_margin_s, self._window // 4)  # short windows (tests, demos) keep a quarter
        if self.chain_time() + margin > deadline:
            raise PaymentRequiredError(
                f"request {request_id} must be marked served by {deadline} (paidAt + serviceWindow); that is too "
                f"close (under {margin} s) to serve it safely: refund it after the window",
                "service_window_closing",
                request_id,
            )
        return payment
