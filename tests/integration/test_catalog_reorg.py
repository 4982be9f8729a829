"""The CLI's catalog follows the chain through reorgs (one follower, chain.block_follower, for CLI and oracle)."""

from __future__ import annotations

from attribution_oracle.chain.wallets import dev_account
from attribution_oracle.chain.web3_client import ChainClient


def _rpc(chain_cli, method: str, params: list) -> object:
    client = ChainClient(chain_cli.env["ATTRIBUTION_RPC"])
    response = client.w3.provider.make_request(method, params)
    assert "error" not in response, response
    return response["result"]


def _names(chain_cli) -> list[str]:
    return [d["name"] for d in chain_cli.json("datanet", "list")]


def test_the_catalog_forgets_a_reorged_datanet_and_reads_the_new_branch(chain_cli):
    chain_cli("token", "mint", "dev:0", "100", "--from", "dev:0")
    chain_cli("datanet", "create", "kept", "--from", "dev:0")
    snapshot = _rpc(chain_cli, "evm_snapshot", [])
    chain_cli("datanet", "create", "orphaned", "--from", "dev:0")
    assert _names(chain_cli) == ["kept", "orphaned"]
    head_before = int(_rpc(chain_cli, "eth_blockNumber", []), 16)

    assert _rpc(chain_cli, "evm_revert", [snapshot]) is True
    # the new branch: other transactions at the same heights (and no higher), so the old cursor block number
    # exists again with another hash
    chain_cli("datanet", "create", "replacement", "--from", "dev:0")
    assert int(_rpc(chain_cli, "eth_blockNumber", []), 16) == head_before

    assert _names(chain_cli) == ["kept", "replacement"]
    owners = {d["name"]: d["owner"] for d in chain_cli.json("datanet", "list")}
    assert owners["replacement"] == dev_account(0).address
