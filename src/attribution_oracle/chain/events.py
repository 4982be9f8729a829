"""Fetch and decode contract events into plain dicts (the catalog's input)."""

from __future__ import annotations

from typing import Any

from hexbytes import HexBytes
from web3._utils.events import get_event_data
from web3.contract import Contract

from attribution_oracle.chain.client import ChainClient

MAX_BLOCK_RANGE = 5_000


def _plain(value: Any) -> Any:
    if isinstance(value, HexBytes):
        return bytes(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def fetch_events(client: ChainClient, contracts: list[Contract], from_block: int, to_block: int) -> list[dict]:
    """Return every event the contracts emitted in ``[from_block, to_block]``, in chain order.

    Each event is ``{"event", "args", "blockNumber", "blockHash", "logIndex", "transactionHash", "address"}`` with
    bytes32 values as ``bytes``, structs as dicts and arrays as lists.
    """
    decoders = {}
    for contract in contracts:
        for abi in contract.abi:
            if abi.get("type") == "event":
                topic = contract.events[abi["name"]]().topic
                decoders[(contract.address.lower(), HexBytes(topic))] = abi
    events = []
    start = from_block
    while start <= to_block:
        end = min(to_block, start + MAX_BLOCK_RANGE - 1)
        with client.rpc():
            logs = client.w3.eth.get_logs(
                {"address": [c.address for c in contracts], "fromBlock": start, "toBlock": end}
            )
        for log in logs:
            abi = decoders.get((log["address"].lower(), HexBytes(log["topics"][0])))
            if abi is None:
                continue
            data = get_event_data(client.w3.codec, abi, log)
            events.append(
                {
                    "event": data["event"],
                    "args": _plain(dict(data["args"])),
                    "blockNumber": data["blockNumber"],
                    "blockHash": data["blockHash"].to_0x_hex(),
                    "logIndex": data["logIndex"],
                    "transactionHash": data["transactionHash"].to_0x_hex(),
                    "address": data["address"],
                }
            )
        start = end + 1
    events.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
    return events
