"""Fetch and decode contract events into plain dicts (the catalog's and the oracle's input).

Logs are read with a raw ``eth_getLogs`` call (no web3 result formatters) and decoded with ``eth_abi`` from
tables built once per contract set: ``(address, topic0) -> (event name, indexed types, data types)``. The
output is the same as web3's ``get_event_data`` (checksummed addresses, structs as dicts keyed by component
name, arrays as lists, ``bytes``/``bytesN`` as ``bytes``, indexed dynamic values as their 32-byte topic);
``tests/unit/chain/test_chain_events.py`` checks that for every event of the deployed contracts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.grammar import ABIType, TupleType, parse
from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3.contract import Contract

from attribution_oracle.chain.chain_errors import ChainError
from attribution_oracle.chain.web3_client import ChainClient

MAX_BLOCK_RANGE = 5_000

Convert = Callable[[Any], Any]
WORD = 32
_ADDRESS_PAD = bytes(12)
_FAST_WORDS = frozenset({"uint256", "bytes32", "address"})


@lru_cache(maxsize=8192)
def _checksum(address: str) -> str:
    """EIP-55 checksum address (cached: a chain has few distinct accounts and keccak is the slow part)."""
    return to_checksum_address(address)


def _word(kind: str, word: bytes) -> Any:
    """A 32-byte head word of a static type, or ``eth_abi``'s strict decoding when it is not the plain case."""
    if kind == "uint256":
        return int.from_bytes(word, "big")
    if kind == "bytes32":
        return bytes(word)
    if kind == "address" and word[:12] == _ADDRESS_PAD:
        return _checksum("0x" + word[12:].hex())
    value = abi_decode([kind], word)[0]  # raises on bad padding, like web3 would
    return _checksum(value) if kind == "address" else value


def _identity(value: Any) -> Any:
    return value


def _converter(abi_type: ABIType, components: Sequence[dict] | None) -> Convert:
    """How to turn ``eth_abi``'s value of ``abi_type`` into what web3 returns (None-free closures)."""
    if abi_type.is_array:
        item = _converter(abi_type.item_type, components)
        if item is _identity:
            return list
        return lambda values: [item(v) for v in values]
    if isinstance(abi_type, TupleType):
        parts = [
            (c["name"], _converter(parse(_type_str(c)), c.get("components"))) for c in components or ()
        ]  # component ABI entries carry the names
        if len(parts) != len(abi_type.components):
            raise ChainError(f"tuple ABI without matching components: {abi_type.to_type_str()}")
        return lambda values: {name: convert(v) for (name, convert), v in zip(parts, values, strict=True)}
    if abi_type.base == "address":
        return _checksum
    return _identity


def _type_str(abi: dict) -> str:
    """The canonical type string of an ABI input (tuples collapsed to ``(t1,t2)`` plus array suffix)."""
    kind = abi["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_type_str(c) for c in abi["components"]) + ")" + kind[len("tuple") :]
    return kind


def _topic_type(abi: dict) -> str:
    """Indexed dynamic values (strings, bytes, arrays, structs) are stored as their keccak hash."""
    kind = _type_str(abi)
    parsed = parse(kind)
    return "bytes32" if parsed.is_dynamic or parsed.is_array or isinstance(parsed, TupleType) else kind


@dataclass(frozen=True)
class EventDecoder:
    """Decodes one event's raw log (topics and data as bytes) into its web3-style args dict."""

    name: str
    topic_fields: tuple[tuple[str, str, Convert], ...]  # (name, type, convert) of indexed inputs, in order
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]
    data_converts: tuple[Convert, ...]
    data_words: bool = False  # every data value is one uint256 / bytes32 / address word: sliced, no eth_abi

    @classmethod
    def from_abi(cls, abi: dict) -> EventDecoder:
        """Build the decoder of an event ABI entry."""
        topic_fields, names, types, converts = [], [], [], []
        for item in abi["inputs"]:
            if item.get("indexed"):
                kind = _topic_type(item)
                convert = _converter(parse(kind), item.get("components") if kind != "bytes32" else None)
                topic_fields.append((item["name"], kind, convert))
            else:
                kind = _type_str(item)
                names.append(item["name"])
                types.append(kind)
                converts.append(_converter(parse(kind), item.get("components")))
        if set(names) & {f[0] for f in topic_fields}:
            raise ChainError(f"event {abi['name']}: an argument name is both indexed and not")
        words = all(t in _FAST_WORDS for t in types)
        return cls(abi["name"], tuple(topic_fields), tuple(names), tuple(types), tuple(converts), words)

    def args(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        """Decode ``topics`` (without topic0) and ``data``."""
        if len(topics) != len(self.topic_fields):
            raise ChainError(f"event {self.name}: expected {len(self.topic_fields)} indexed topics, got {len(topics)}")
        out: dict[str, Any] = {}
        for (name, kind, convert), topic in zip(self.topic_fields, topics, strict=True):
            if kind in _FAST_WORDS and len(topic) == WORD:
                out[name] = _word(kind, topic)
            else:
                out[name] = convert(abi_decode([kind], topic)[0])
        if self.data_words and len(data) == WORD * len(self.data_types):
            for i, (name, kind) in enumerate(zip(self.data_names, self.data_types, strict=True)):
                out[name] = _word(kind, data[i * WORD : (i + 1) * WORD])
        elif self.data_types:
            values = abi_decode(self.data_types, data)
            for name, convert, value in zip(self.data_names, self.data_converts, values, strict=True):
                out[name] = convert(value)
        return out


class LogDecoder:
    """Decoders of every (non-anonymous) event of some contracts, keyed by ``(address, topic0)``."""

    def __init__(self, contracts: Iterable[Contract]) -> None:
        """Build the tables once; reuse the decoder for every fetch."""
        self.addresses: list[str] = []
        self.table: dict[tuple[str, bytes], EventDecoder] = {}
        for contract in contracts:
            self.addresses.append(contract.address)
            for abi in contract.abi:
                if abi.get("type") == "event" and not abi.get("anonymous"):
                    self.table[(contract.address.lower(), bytes(event_abi_to_log_topic(abi)))] = EventDecoder.from_abi(
                        abi
                    )

    def decode(self, log: dict) -> dict | None:
        """A raw JSON-RPC log -> the event dict of ``fetch_events`` (None for logs of unknown events)."""
        topics = log["topics"]
        if not topics:
            return None
        address = log["address"]
        decoder = self.table.get((address.lower(), _hex_bytes(topics[0])))
        if decoder is None:
            return None
        args = decoder.args([_hex_bytes(t) for t in topics[1:]], _hex_bytes(log["data"]))
        return {
            "event": decoder.name,
            "args": args,
            "blockNumber": int(log["blockNumber"], 16),
            "blockHash": log["blockHash"].lower(),
            "logIndex": int(log["logIndex"], 16),
            "transactionHash": log["transactionHash"].lower(),
            "address": _checksum(address),
        }


def _hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith(("0x", "0X")) else text)


def rpc_request(client: ChainClient, method: str, params: list) -> Any:
    """One raw JSON-RPC call (no web3 middleware or formatters); ``ChainError`` on an RPC error answer."""
    with client.rpc():
        response = client.w3.provider.make_request(method, params)
    if "error" in response:
        error = response["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ChainError(f"{method} failed: {message}")
    return response["result"]


def fetch_events(
    client: ChainClient,
    contracts: list[Contract],
    from_block: int,
    to_block: int,
    decoder: LogDecoder | None = None,
) -> list[dict]:
    """Return every event the contracts emitted in ``[from_block, to_block]``, in chain order.

    Each event is ``{"event", "args", "blockNumber", "blockHash", "logIndex", "transactionHash", "address"}`` with
    bytes32 values as ``bytes``, structs as dicts and arrays as lists. Pass a ``decoder`` built once for the same
    contracts to skip rebuilding the topic tables.
    """
    decoder = decoder or LogDecoder(contracts)
    events = []
    start = from_block
    while start <= to_block:
        end = min(to_block, start + MAX_BLOCK_RANGE - 1)
        logs = rpc_request(
            client, "eth_getLogs", [{"address": decoder.addresses, "fromBlock": hex(start), "toBlock": hex(end)}]
        )
        for log in logs:
            if log.get("removed"):
                continue
            event = decoder.decode(log)
            if event is not None:
                events.append(event)
        start = end + 1
    events.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
    return events
