"""ChainClient's sends that do not wait one receipt at a time, on a real Anvil with the real contracts.

``send_calldata_many`` (the oracle benchmark's driver: calldata encoded with eth_abi, checked, signed and sent back
to back) and ``send_nowait`` + ``receipt`` (an oracle node's report submission, watched on later loop passes).
"""

from __future__ import annotations

import eth_abi
import pytest
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types

from attribution_oracle.chain.chain_errors import TransactionError
from attribution_oracle.chain.deployments import load_deployment
from attribution_oracle.chain.wallets import dev_account
from attribution_oracle.chain.web3_client import ChainClient


def _calldata(contract, name: str, *args) -> bytes:
    abi = next(f for f in contract.abi if f.get("type") == "function" and f.get("name") == name)
    return function_abi_to_4byte_selector(abi) + eth_abi.encode(get_abi_input_types(abi), list(args))


@pytest.fixture(scope="module")
def token(chain_cli):
    client = ChainClient(chain_cli.env["ATTRIBUTION_RPC"])
    deployment = load_deployment(client.chain_id, [chain_cli.home / "deployments"])
    return client, client.contract(deployment, "OpenToken")


def test_calldata_sent_back_to_back_lands_in_order(token) -> None:
    client, contract = token
    owner = dev_account(2)
    spenders = [dev_account(k).address for k in (3, 4, 5)]
    calls = [(contract.address, _calldata(contract, "approve", s, 10 + i), f"approve {i}") for i, s in
             enumerate(spenders)]  # fmt: skip
    receipts = client.send_calldata_many(calls, owner)
    assert [r["status"] for r in receipts] == [1, 1, 1]
    assert [contract.functions.allowance(owner.address, s).call() for s in spenders] == [10, 11, 12]
    nonces = [client.w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts]
    assert nonces == list(range(nonces[0], nonces[0] + 3)), "consecutive nonces"


def test_calldata_that_would_revert_is_refused_before_sending_and_the_earlier_ones_land(token) -> None:
    client, contract = token
    owner = dev_account(6)  # holds no tokens
    before = client.w3.eth.get_transaction_count(owner.address)
    calls = [
        (contract.address, _calldata(contract, "approve", dev_account(3).address, 7), "approve"),
        (contract.address, _calldata(contract, "transfer", dev_account(3).address, 10**30), "transfer too much"),
    ]
    with pytest.raises(TransactionError, match="transfer too much would revert"):
        client.send_calldata_many(calls, owner)
    assert client.w3.eth.get_transaction_count(owner.address) == before + 1, "only the approve was sent"
    assert contract.functions.allowance(owner.address, dev_account(3).address).call() == 7


def test_a_transaction_sent_without_waiting_is_watched_until_mined(token) -> None:
    client, contract = token
    owner = dev_account(7)
    client.w3.provider.make_request("evm_setAutomine", [False])
    try:
        tx = client.send_nowait(contract.functions.approve(dev_account(4).address, 99), owner, "approve")
        assert client.receipt(tx) is None, "not mined yet"
        client.w3.provider.make_request("evm_mine", [])
    finally:
        client.w3.provider.make_request("evm_setAutomine", [True])
    receipt = client.receipt(tx)
    assert receipt is not None and receipt["status"] == 1
    assert contract.functions.allowance(owner.address, dev_account(4).address).call() == 99
    with pytest.raises(TransactionError, match="would revert"):
        client.send_nowait(contract.functions.transfer(dev_account(3).address, 10**30), owner, "transfer")
