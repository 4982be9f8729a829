"""The raw-log event decoder gives exactly what web3's ``get_event_data`` gives, for every deployed event."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_abi.grammar import TupleType, parse
from eth_utils import event_abi_to_log_topic, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3._utils.events import get_event_data
from web3._utils.method_formatters import log_entry_formatter
from web3.datastructures import AttributeDict

from attribution_oracle.chain.compile import compile_contract
from attribution_oracle.chain.event_decoding import EventDecoder, LogDecoder, _topic_type, _type_str

CONTRACTS = ("OpenToken", "DatanetRegistry", "ModelRegistry", "InferenceMarket", "RewardDistributor")
ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
W3 = Web3()


def _events() -> list[tuple[str, dict]]:
    return [(name, abi) for name in CONTRACTS for abi in compile_contract(name).abi if abi["type"] == "event"]


def _values(kind: str) -> st.SearchStrategy:
    """Values of an ABI type string (tuples as ``(a,b)``), as ``eth_abi.encode`` takes them."""
    parsed = parse(kind)
    if parsed.is_array:
        item = _values(parsed.item_type.to_type_str())
        size = parsed.arrlist[-1]
        return st.lists(item, min_size=size[0] if size else 0, max_size=size[0] if size else 3)
    if isinstance(parsed, TupleType):
        return st.tuples(*(_values(c.to_type_str()) for c in parsed.components))
    base, sub = parsed.base, parsed.sub
    if base == "uint":
        return st.integers(0, 2**sub - 1)
    if base == "int":
        return st.integers(-(2 ** (sub - 1)), 2 ** (sub - 1) - 1)
    if base == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
    if base == "bool":
        return st.booleans()
    if base == "bytes":
        return st.binary(min_size=sub, max_size=sub) if sub else st.binary(max_size=70)
    if base == "string":
        return st.text(max_size=40)
    raise AssertionError(f"no strategy for {kind}")


@st.composite
def raw_logs(draw: st.DrawFn, abi: dict) -> dict:
    """A JSON-RPC log (hex strings, as eth_getLogs returns it) of ``abi`` with random argument values."""
    topics = ["0x" + bytes(event_abi_to_log_topic(abi)).hex()]
    data_types, data_values = [], []
    for item in abi["inputs"]:
        if item.get("indexed"):
            kind = _topic_type(item)
            topics.append("0x" + encode([kind], [draw(_values(kind))]).hex())
        else:
            kind = _type_str(item)
            data_types.append(kind)
            data_values.append(draw(_values(kind)))
    block = draw(st.integers(0, 2**40))
    return {
        "address": ADDRESS.lower(),
        "topics": topics,
        "data": "0x" + encode(data_types, data_values).hex(),
        "blockNumber": hex(block),
        "blockHash": "0x" + draw(st.binary(min_size=32, max_size=32)).hex(),
        "logIndex": hex(draw(st.integers(0, 5000))),
        "transactionIndex": hex(draw(st.integers(0, 500))),
        "transactionHash": "0x" + draw(st.binary(min_size=32, max_size=32)).hex(),
        "removed": False,
    }


def _plain(value: object) -> object:
    """web3's values as plain Python: AttributeDicts -> dicts, HexBytes -> bytes, tuples -> lists."""
    if isinstance(value, AttributeDict | dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _web3_event(abi: dict, raw: dict) -> dict:
    data = get_event_data(W3.codec, abi, AttributeDict(log_entry_formatter(raw)))
    return {
        "event": data["event"],
        "args": _plain(dict(data["args"])),
        "blockNumber": data["blockNumber"],
        "blockHash": data["blockHash"].to_0x_hex(),
        "logIndex": data["logIndex"],
        "transactionHash": data["transactionHash"].to_0x_hex(),
        "address": data["address"],
    }


EVENTS = _events()


def test_every_deployed_contract_has_events() -> None:
    names = {name for name, _ in EVENTS}
    assert names == set(CONTRACTS)
    assert any(i["type"].startswith("tuple") for _, abi in EVENTS for i in abi["inputs"]), "structs are covered"


@pytest.mark.parametrize(("contract", "abi"), EVENTS, ids=[f"{c}.{a['name']}" for c, a in EVENTS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decoder_matches_web3_get_event_data(contract: str, abi: dict, data: st.DataObject) -> None:
    raw = data.draw(raw_logs(abi))
    contract_handle = W3.eth.contract(address=ADDRESS, abi=[abi])
    ours = LogDecoder([contract_handle]).decode(raw)
    assert ours == _web3_event(abi, raw)


def test_logs_of_unknown_events_or_contracts_are_skipped() -> None:
    abi = next(a for c, a in EVENTS if c == "InferenceMarket" and a["name"] == "InferenceServed")
    decoder = LogDecoder([W3.eth.contract(address=ADDRESS, abi=[abi])])
    log = {"address": ADDRESS, "topics": ["0x" + "00" * 32], "data": "0x", "blockNumber": "0x1",
           "blockHash": "0x" + "11" * 32, "logIndex": "0x0", "transactionHash": "0x" + "22" * 32}  # fmt: skip
    assert decoder.decode(log) is None
    assert decoder.decode({**log, "topics": []}) is None
    topic = "0x" + bytes(event_abi_to_log_topic(abi)).hex()
    assert decoder.decode({**log, "address": "0x" + "99" * 20, "topics": [topic]}) is None


def test_wrong_topic_count_is_a_clear_error() -> None:
    abi = next(a for c, a in EVENTS if c == "InferenceMarket" and a["name"] == "InferenceServed")
    with pytest.raises(Exception, match="expected 2 indexed topics"):
        EventDecoder.from_abi(abi).args([b"\0" * 32], b"")


def test_malformed_words_are_rejected_like_web3() -> None:
    """A dirty address word (non-zero padding) is not silently truncated: eth_abi's strict decoding raises."""
    abi = next(a for c, a in EVENTS if c == "InferenceMarket" and a["name"] == "InferenceServed")
    topic = "0x" + bytes(event_abi_to_log_topic(abi)).hex()
    log = {"address": ADDRESS, "topics": [topic, "0x" + "00" * 31 + "07", "0x" + "ff" * 32], "data": "0x",
           "blockNumber": "0x1", "blockHash": "0x" + "11" * 32, "logIndex": "0x0", "transactionIndex": "0x0",
           "transactionHash": "0x" + "22" * 32}  # fmt: skip
    decoder = LogDecoder([W3.eth.contract(address=ADDRESS, abi=[abi])])
    with pytest.raises(Exception) as ours:
        decoder.decode(log)
    with pytest.raises(Exception) as theirs:
        _web3_event(abi, log)
    assert "padding" in str(ours.value).lower() and "padding" in str(theirs.value).lower()
