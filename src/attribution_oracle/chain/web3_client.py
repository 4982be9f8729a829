"""A web3.py client: connection, contract handles and transactions with readable errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    BadResponseFormat,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import TxReceipt

from attribution_oracle.chain.chain_errors import ChainError, RpcUnavailableError, TransactionError
from attribution_oracle.chain.deployments import Deployment

DEFAULT_RPC = "http://127.0.0.1:8545"
RECEIPT_TIMEOUT_S = 60


def revert_reason(exc: Exception) -> str:
    """Extract a contract's revert reason from a web3 exception, as one line."""
    message = getattr(exc, "message", None) or str(exc)
    message = str(message).splitlines()[0]
    return re.sub(r"^(execution reverted:?\s*)", "", message).strip() or "reverted without a reason"


def format_eth(wei: int) -> str:
    """Format a wei amount of an 18-decimal token (ETH or OPEN) for people."""
    value = Decimal(wei) / Decimal(10**18)
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _friendly_rpc_error(exc: Exception, what: str) -> ChainError:
    text = revert_reason(exc)
    lower = text.lower()
    if "insufficient funds" in lower:
        return TransactionError(f"{what}: the sender does not have enough ETH to pay for gas ({text})")
    if "nonce too low" in lower or "nonce too high" in lower or "already known" in lower:
        return TransactionError(f"{what}: nonce problem ({text}); another transaction from this account raced it")
    return TransactionError(f"{what} failed: {text}")


class ChainClient:
    """Talk to one chain through one RPC endpoint; raises ``ChainError`` subclasses with readable messages."""

    def __init__(self, rpc_url: str = DEFAULT_RPC, timeout_s: float = 10.0) -> None:
        self.rpc_url = rpc_url
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        self._chain_id: int | None = None

    @contextmanager
    def rpc(self):
        """Translate connection failures into ``RpcUnavailableError``."""
        try:
            yield
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError) as exc:
            raise RpcUnavailableError(
                f"cannot reach the chain at {self.rpc_url} (is the node running? try `attribution-oracle node start`)"
            ) from exc
        except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL):
            raise RpcUnavailableError(
                f"{self.rpc_url!r} is not an RPC URL: give one like http://127.0.0.1:8545 (--rpc or $ATTRIBUTION_RPC)"
            ) from None
        except (json.JSONDecodeError, BadResponseFormat, requests.exceptions.HTTPError) as exc:
            raise RpcUnavailableError(
                f"{self.rpc_url} answers but is not an Ethereum JSON-RPC endpoint ({type(exc).__name__}); "
                "check --rpc or $ATTRIBUTION_RPC"
            ) from None

    @property
    def chain_id(self) -> int:
        """The connected chain's id (asked once)."""
        if self._chain_id is None:
            with self.rpc():
                self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def contract(self, deployment: Deployment, name: str, decode_tuples: bool = False) -> Contract:
        """A web3 contract handle for a deployed contract (``decode_tuples``: structs come back as named tuples)."""
        record = deployment.contracts.get(name)
        if record is None:
            raise ChainError(f"the deployment has no contract named {name}")
        address = Web3.to_checksum_address(record.address)
        return self.w3.eth.contract(address=address, abi=record.abi, decode_tuples=decode_tuples)

    def simulate(self, fn: Any, sender: str) -> str | None:
        """Dry-run a transaction as ``sender`` (an ``eth_call``): None if it would succeed, else the revert reason."""
        with self.rpc():
            try:
                fn.call({"from": sender})
            except ContractLogicError as exc:
                return revert_reason(exc)
        return None

    def call(self, fn: Any, what: str = "call") -> Any:
        """Call a view function; reverts become ``ChainError`` with the contract's reason."""
        with self.rpc():
            try:
                return fn.call()
            except ContractLogicError as exc:
                raise ChainError(revert_reason(exc)) from exc

    def eth_balance(self, address: str) -> int:
        """ETH balance in wei."""
        with self.rpc():
            return self.w3.eth.get_balance(Web3.to_checksum_address(address))

    def block(self, identifier: int | str = "latest") -> Any:
        """A block header."""
        with self.rpc():
            return self.w3.eth.get_block(identifier)

    def send(self, fn: Any, signer: LocalAccount, what: str, value: int = 0) -> TxReceipt:
        """Build, sign, send and wait for a contract transaction.

        Checks before signing that the call would not revert and that the sender can pay for gas, so a
        failure costs nothing; returns the receipt of a successful transaction.
        """
        return self._send(lambda params: fn.build_transaction(params), signer, what, value)

    def send_nowait(self, fn: Any, signer: LocalAccount, what: str) -> str:
        """Build, check, sign and send a contract transaction like ``send``, without waiting for it to be mined.

        Returns the transaction hash (0x hex); ``receipt`` tells later whether it was mined and succeeded."""
        with self.rpc():
            nonce = self.w3.eth.get_transaction_count(signer.address, "pending")
        _tx, tx_hash = self._submit(lambda params: fn.build_transaction(params), signer, what, 0, nonce)
        return "0x" + bytes(tx_hash).hex()

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        """The receipt of a sent transaction, or None while it is not mined (or unknown to the node)."""
        with self.rpc():
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                return None

    def send_eth(self, signer: LocalAccount, to: str, value: int, what: str = "ETH transfer") -> TxReceipt:
        """Send plain ETH."""
        return self._send(self._eth_transfer(to), signer, what, value)

    def send_eth_many(self, signer: LocalAccount, transfers: list[tuple[str, int]]) -> list[TxReceipt]:
        """Send plain ETH ``(to, value)`` to several accounts back to back, then wait for all (see ``send_many``)."""
        return self._send_many(
            [(self._eth_transfer(to), f"ETH transfer to {to}", value) for to, value in transfers], signer
        )

    def _eth_transfer(self, to: str) -> Callable[[dict], dict]:
        def build(params: dict) -> dict:
            params = dict(params, to=Web3.to_checksum_address(to))
            params["gas"] = self.w3.eth.estimate_gas(params)
            params.update(self._fees())
            return params

        return build

    def deploy(self, abi: list[dict], bytecode: str, args: list, signer: LocalAccount, what: str) -> TxReceipt:
        """Deploy a contract and return the receipt (``contractAddress`` holds its address)."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        return self.send(factory.constructor(*args), signer, what)

    def _fees(self) -> dict:
        base = self.block("latest").get("baseFeePerGas", 0) or 0
        tip = self.w3.eth.max_priority_fee
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    def send_many(self, calls: list[tuple[Any, str]], signer: LocalAccount) -> list[TxReceipt]:
        """Send several contract transactions ``(fn, what)`` back to back, then wait for all of them.

        Each is checked and signed like ``send`` (consecutive nonces), so independent transactions land in the
        same block or the next few instead of one block each; returns the receipts in order. If one would revert
        before it is sent, the ones before it are still sent and awaited, and the error names the failing one.
        """
        return self._send_many(
            [(lambda params, fn=fn: fn.build_transaction(params), what, 0) for fn, what in calls], signer
        )

    def send_calldata_many(self, calls: list[tuple[str, bytes, str]], signer: LocalAccount) -> list[TxReceipt]:
        """``send_many`` for calls given as ``(contract address, ABI-encoded calldata, what)``.

        For senders that encode their own calldata (``eth_abi``; web3's encoder is slow on large struct arrays).
        Each call is still checked with ``eth_estimateGas`` (a revert raises ``TransactionError`` before sending),
        signed and sent with consecutive nonces; the receipts are awaited together."""
        fees = self._fees()

        def build(to: str, data: bytes) -> Callable[[dict], dict]:
            def params_of(params: dict) -> dict:
                tx = {**params, "to": Web3.to_checksum_address(to), "data": "0x" + bytes(data).hex(), **fees}
                try:
                    tx["gas"] = self.w3.eth.estimate_gas({k: tx[k] for k in ("from", "to", "data", "value")})
                except Web3RPCError as exc:  # Anvil reports a revert of eth_estimateGas as an RPC error
                    if "revert" in str(exc).lower():
                        raise ContractLogicError(str(exc)) from exc
                    raise
                return tx

            return params_of

        return self._send_many([(build(to, data), what, 0) for to, data, what in calls], signer)

    def _send_many(
        self, builds: list[tuple[Callable[[dict], dict], str, int]], signer: LocalAccount
    ) -> list[TxReceipt]:
        if not builds:
            return []
        with self.rpc():
            nonce = self.w3.eth.get_transaction_count(signer.address, "pending")
        sent: list[tuple[dict, Any, str]] = []
        failure: Exception | None = None
        for offset, (build, what, value) in enumerate(builds):
            try:
                tx, tx_hash = self._submit(build, signer, what, value, nonce + offset)
            except ChainError as exc:
                failure = exc
                break
            sent.append((tx, tx_hash, what))
        receipts = [self._await(tx, tx_hash, what) for tx, tx_hash, what in sent]
        if failure is not None:
            raise failure
        return receipts

    def _send(self, build: Callable[[dict], dict], signer: LocalAccount, what: str, value: int) -> TxReceipt:
        with self.rpc():
            nonce = self.w3.eth.get_transaction_count(signer.address, "pending")
        tx, tx_hash = self._submit(build, signer, what, value, nonce)
        return self._await(tx, tx_hash, what)

    def _submit(
        self, build: Callable[[dict], dict], signer: LocalAccount, what: str, value: int, nonce: int
    ) -> tuple[dict, Any]:
        """Build (which checks the call would not revert), check the gas money, sign and send; returns the hash."""
        with self.rpc():
            params = {"from": signer.address, "value": value, "chainId": self.chain_id, "nonce": nonce}
            try:
                tx = build(params)
            except ContractLogicError as exc:
                raise TransactionError(f"{what} would revert: {revert_reason(exc)}") from exc
            except Web3RPCError as exc:
                raise _friendly_rpc_error(exc, what) from exc
            fee_per_gas = tx.get("maxFeePerGas", tx.get("gasPrice", 0))
            needed = int(tx["gas"]) * int(fee_per_gas) + value
            balance = self.w3.eth.get_balance(signer.address)
            if balance < needed:
                raise TransactionError(
                    f"{what}: {signer.address} has {format_eth(balance)} ETH but needs up to "
                    f"{format_eth(needed)} ETH for gas and value; fund it first (`wallet fund`)"
                )
            signed = signer.sign_transaction(tx)
            try:
                return tx, self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Web3RPCError as exc:
                raise _friendly_rpc_error(exc, what) from exc

    def _await(self, tx: dict, tx_hash: Any, what: str) -> TxReceipt:
        """Wait for a sent transaction's receipt; ``TransactionError`` if it is not mined or reverted."""
        with self.rpc():
            try:
                receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
            except TimeExhausted as exc:
                raise TransactionError(f"{what}: not mined within {RECEIPT_TIMEOUT_S}s (tx {tx_hash.hex()})") from exc
            if receipt["status"] != 1:
                raise TransactionError(f"{what} reverted on-chain: {self._replay_reason(tx, receipt)}")
            return receipt

    def _replay_reason(self, tx: dict, receipt: TxReceipt) -> str:
        call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
        try:
            self.w3.eth.call(call, receipt["blockNumber"] - 1)
        except (ContractLogicError, Web3RPCError) as exc:
            return revert_reason(exc)
        return f"tx {receipt['transactionHash'].hex()} (no reason given)"
