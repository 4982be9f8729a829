"""Proof of service in the background: the operator marks served requests on-chain, in batches, with retries.

Served requests are queued with their receipts; a worker thread sends ``InferenceMarket.markServed`` for up
to 64 receipts at a time (the contract's ``MAX_BATCH``), which releases each fee to the treasury, the model
owner and the RewardDistributor; per-token requests go with their terms and token counts to
``markServedMetered``, which charges the actual tokens and refunds the rest of the authorized maximum.
A failed transaction is retried with exponential backoff; before a retry, receipts the market no longer
holds as paid (served by another operator, refunded) are dropped, since one of them would make the whole
batch revert. The served-record log is the source of truth: on start,
``recover`` re-queues every recorded request the chain still shows as paid.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from eth_account.signers.local import LocalAccount

from attribution_oracle.serving.payments import STATUS_PAID, PaymentGate
from attribution_oracle.serving.served_log import ServedRecordStore

__all__ = ["ServiceMarker"]

MAX_BATCH = 64
log = logging.getLogger("attribution_oracle.serving")


class ServiceMarker:
    """Sends ``markServed`` for queued receipts from one operator account."""

    def __init__(
        self,
        gate: PaymentGate,
        operator: LocalAccount,
        interval_s: float = 0.5,
        max_backoff_s: float = 30.0,
        on_event: Callable[[str, int], None] | None = None,
    ) -> None:
        """``on_event(name, count)`` reports ``marked``, ``failed`` and ``dropped`` (metrics)."""
        self.gate = gate
        self.operator = operator
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self._on_event = on_event or (lambda name, count: None)
        self._pending: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.marked: list[int] = []
        # held around every transaction from the operator account (the x402 gate sends from it too)
        self.send_lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        """Receipts waiting to be marked served."""
        with self._cond:
            return len(self._pending)

    def enqueue(self, receipt: dict, meter: dict | None = None, tokens: tuple[int, int] = (0, 0)) -> None:
        """Queue one served request's receipt (with its per-token ``meter`` and (input, output) ``tokens``)."""
        with self._cond:
            if meter is None:
                self._pending[int(receipt["requestId"])] = receipt
            else:
                entry = {"receipt": receipt, "meter": meter, "inputTokens": tokens[0], "outputTokens": tokens[1]}
                self._pending[int(receipt["requestId"])] = entry
            self._cond.notify()

    def recover(self, store: ServedRecordStore, input_tokens=None) -> int:
        """Queue every recorded request that the chain still holds as paid; returns how many.

        ``input_tokens(record)`` is the metered input token count (default: the record's prompt token ids; a server
        with retrieval meters the paid prompt only)."""
        count, after = 0, 0
        while page := store.after(after, 500):
            for record in page:
                if self.gate.status(record.request_id) == STATUS_PAID:
                    payment = self.gate.payment(record.request_id)
                    metered = input_tokens(record) if input_tokens is not None else len(record.prompt_token_ids)
                    tokens = (metered, len(record.output_token_ids))
                    self.enqueue(payment.receipt, payment.meter, tokens)
                    count += 1
            after = page[-1].request_id
        return count

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="mark-served", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Try to mark what is pending (bounded by ``timeout_s``), then stop the worker."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline and self._thread and self._thread.is_alive():
            time.sleep(0.05)
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until nothing is pending; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.pending:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _run(self) -> None:
        backoff = self.interval_s
        while True:
            with self._cond:
                if not self._pending and not self._stop:
                    self._cond.wait(self.interval_s)
                if self._stop:
                    return
                batch = [self._pending[r] for r in sorted(self._pending)[:MAX_BATCH]]
            if not batch:
                continue
            try:
                flat = [r for r in batch if "receipt" not in r]
                metered = [r for r in batch if "receipt" in r]
                functions = self.gate.market.functions
                if flat:
                    with self.send_lock:
                        self.gate.client.send(
                            functions.markServed(flat), self.operator, f"mark {len(flat)} request(s) served"
                        )
                    with self._cond:
                        for r in flat:
                            self._pending.pop(int(r["requestId"]), None)
                if metered:
                    with self.send_lock:
                        self.gate.client.send(
                            functions.markServedMetered(metered),
                            self.operator,
                            f"settle {len(metered)} per-token request(s)",
                        )
            except Exception as exc:  # noqa: BLE001 - logged, retried
                self.last_error = str(exc)
                self._on_event("failed", len(batch))
                log.warning("markServed failed (retrying in %.1fs): %s", backoff, exc)
                self._drop_settled(batch)
                with self._cond:
                    self._cond.wait(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)
                continue
            backoff = self.interval_s
            ids = [int(r.get("receipt", r)["requestId"]) for r in batch]
            with self._cond:
                for request_id in ids:
                    self._pending.pop(request_id, None)
            self.marked += ids
            self._on_event("marked", len(ids))
            log.info("marked served on-chain: %s", ", ".join(map(str, ids)))

    def _drop_settled(self, batch: list[dict]) -> None:
        for entry in batch:
            receipt = entry.get("receipt", entry)  # a per-token entry wraps its receipt with the token counts
            request_id = int(receipt["requestId"])
            try:
                status = self.gate.status(request_id)
                expired = status == STATUS_PAID and self.gate.chain_time() > self.gate.service_deadline(receipt)
            except Exception:  # noqa: BLE001 - the chain is unreachable: keep everything, retry later
                return
            if status != STATUS_PAID or expired:  # an expired receipt would make every retry revert
                with self._cond:
                    self._pending.pop(request_id, None)
                self._on_event("dropped", 1)
                log.warning(
                    "request %d is no longer markable (status %d, window over: %s)", request_id, status, expired
                )
