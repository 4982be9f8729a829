"""Submitting x402 settlements quickly: the server acting as its own facilitator.

A settlement must be mined before the call is served, so its latency is the user's latency. Compared with
``ChainClient.send`` (nonce, estimate, fee history, balance, send, receipt: about seven round trips), this keeps
the account's next nonce in memory when it owns the account exclusively (re-read from the node after any
failure), caches the fee parameters for a few seconds and polls the receipt every 10 ms; the gas estimate stays,
since it is also the check that the call would not revert (with the contract's reason). Only the nonce step is
serialized, so concurrent settlements pipeline. With ``shared=True`` (the account also marks requests served),
the nonce is read from the node under the shared lock instead.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from attribution_oracle.chain.chain_errors import TransactionError
from attribution_oracle.chain.web3_client import ChainClient, revert_reason

__all__ = ["FacilitatorSender"]

FEE_TTL_S = 5.0
RECEIPT_TIMEOUT_S = 60.0


class FacilitatorSender:
    """Sends contract calls from one account with an in-memory nonce and cached fees."""

    def __init__(
        self, client: ChainClient, account: LocalAccount, lock: threading.Lock | None = None, shared: bool = False
    ) -> None:
        """``shared``: another component sends from ``account`` too (holding ``lock`` around its sends)."""
        self.client = client
        self.account = account
        self.lock = lock or threading.Lock()
        self.shared = shared
        self._nonce: int | None = None
        self._fees: tuple[float, dict] | None = None

    def _fee_params(self) -> dict:
        now = time.monotonic()
        if self._fees is None or now - self._fees[0] > FEE_TTL_S:
            base = self.client.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
            tip = self.client.w3.eth.max_priority_fee
            self._fees = (now, {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip})
        return self._fees[1]

    def send(self, fn: Any, what: str) -> Any:
        """Estimate (raising ``TransactionError`` with the revert reason), sign, send, wait; returns the receipt."""
        w3 = self.client.w3
        with self.client.rpc():
            params = {"from": self.account.address, "chainId": self.client.chain_id, **self._fee_params()}
            try:
                params["gas"] = int(fn.estimate_gas({"from": self.account.address}) * 1.2)
            except ContractLogicError as exc:
                raise TransactionError(f"{what} would revert: {revert_reason(exc)}") from exc
            with self.lock:
                if self.shared or self._nonce is None:
                    self._nonce = w3.eth.get_transaction_count(self.account.address, "pending")
                params["nonce"] = self._nonce
                signed = self.account.sign_transaction(fn.build_transaction(params))
                try:
                    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
                except Web3RPCError as exc:
                    self._nonce = None  # re-read from the node next time
                    raise TransactionError(f"{what}: {exc}") from exc
                self._nonce += 1
            deadline = time.monotonic() + RECEIPT_TIMEOUT_S
            while True:
                try:
                    receipt = w3.eth.get_transaction_receipt(tx_hash)
                    break
                except TransactionNotFound:
                    if time.monotonic() > deadline:
                        self._nonce = None
                        raise TransactionError(f"{what}: not mined within {RECEIPT_TIMEOUT_S:.0f}s") from None
                    time.sleep(0.01)
            if receipt["status"] != 1:
                self._nonce = None
                raise TransactionError(f"{what} reverted on-chain (tx 0x{bytes(tx_hash).hex()})")
            return receipt
