"""Two oracle nodes send the same epoch's report in the same block, without waiting (real Anvil, real contracts).

The overlapped node loop sends its report transaction and goes on (``Consensus(async_submit=True)``). When two
nodes hold m signatures at once, both reports can be pending together; the distributor accepts the first and
reverts the second, and the loser must see the epoch accepted instead of sending again: the epoch is settled once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import free_port

from attribution_oracle.chain.anvil_process import LocalNode
from attribution_oracle.chain.contract_deploy import deploy_all
from attribution_oracle.chain.event_decoding import fetch_events
from attribution_oracle.chain.wallets import dev_account
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.oracle.consensus import Consensus
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.epochs import BlockEpochs, Draft, EpochBuilder
from attribution_oracle.oracle.node_metrics import Metrics
from attribution_oracle.oracle.peers import Peers
from attribution_oracle.settlement.epoch_report import InferenceShares, build_report
from attribution_oracle.settlement.report_service import report_uri
from attribution_oracle.store.blobs import BlobStore

ORACLES = (7, 8, 9)
FUNDED = 10**21
ALICE = dev_account(2).address


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChainClient, object]]:
    """Anvil (automine) with the contracts, 3 oracle signers (m = 2) and a funded reward pool."""
    root = tmp_path_factory.mktemp("race")
    anvil = LocalNode(root / "anvil", port=free_port())
    anvil.start(fresh=True)
    try:
        client = ChainClient(anvil.rpc_url)
        deployer = dev_account(0)
        deployment = deploy_all(client, deployer, oracle_signers=[dev_account(k).address for k in ORACLES],
                                oracle_threshold=2)  # fmt: skip
        token = client.contract(deployment, "OpenToken")
        distributor = client.contract(deployment, "RewardDistributor")
        client.send(token.functions.mint(deployer.address, FUNDED), deployer, "mint")
        client.send(token.functions.approve(distributor.address, FUNDED), deployer, "approve")
        client.send(distributor.functions.fund(FUNDED), deployer, "fund")
        yield client, deployment
    finally:
        anvil.stop()


class Node:
    """One node's state, builder and consensus (no peers: the test hands the signatures over)."""

    def __init__(self, root: Path, client: ChainClient, deployment, key: int) -> None:
        self.db = OracleDB(root / f"o{key}.sqlite")
        self.store = BlobStore(root / f"blobs{key}")
        self.builder = EpochBuilder(client, deployment, self.db, self.store, BlockEpochs(5), lambda _: None)
        self.metrics = Metrics()
        self.consensus = Consensus(client, deployment, self.db, dev_account(key), Peers([]), self.builder,
                                   self.metrics, 0.0, async_submit=True)  # fmt: skip


def test_attack_two_nodes_race_the_same_epoch_and_it_is_settled_once(chain, tmp_path) -> None:
    client, deployment = chain
    distributor = client.contract(deployment, "RewardDistributor")
    nodes = [Node(tmp_path, client, deployment, key) for key in ORACLES[:2]]
    report = build_report(chain_id=client.chain_id, distributor=distributor.address,
                          config_digest=nodes[0].builder.config_digest(), epoch=1, from_block=1, to_block=5,
                          inferences=[InferenceShares(1, 1, {ALICE: 7 * 10**18}, {"1": 1.0})])  # fmt: skip
    drafts = []
    for node in nodes:
        drafts.append(Draft(1, report_uri(node.store.put_bytes(report.canonical_json())), report))
        assert node.consensus.step(drafts[-1]) == "collecting", "its own signature only"
    for node, other in ((nodes[0], nodes[1]), (nodes[1], nodes[0])):
        for signature in other.consensus.signatures(1):
            assert node.consensus.receive(signature)
    sent_before = [client.w3.eth.get_transaction_count(dev_account(k).address) for k in ORACLES[:2]]
    client.w3.provider.make_request("evm_setAutomine", [False])
    try:
        assert [n.consensus.step(d) for n, d in zip(nodes, drafts, strict=True)] == ["submitted", "submitted"]
        assert [n.consensus.step(d) for n, d in zip(nodes, drafts, strict=True)] == ["submitting", "submitting"]
        client.w3.provider.make_request("evm_mine", [])
    finally:
        client.w3.provider.make_request("evm_setAutomine", [True])
    statuses = sorted(
        client.receipt(tx)["status"] for n in nodes for ((_epoch, _uri), (tx, _at)) in n.consensus._in_flight.items()
    )
    assert statuses == [0, 1], "the distributor accepted one report and reverted the other"
    for _ in range(3):
        assert [n.consensus.step(d) for n, d in zip(nodes, drafts, strict=True)] == ["accepted", "accepted"]
    sent_after = [client.w3.eth.get_transaction_count(dev_account(k).address) for k in ORACLES[:2]]
    assert [a - b for a, b in zip(sent_after, sent_before, strict=True)] == [1, 1], "the loser did not send again"
    assert sum(n.metrics.submit_retries._value.get() for n in nodes) == 0
    head = client.block("latest")["number"]
    submitted = [e for e in fetch_events(client, [distributor], deployment.block_number, head)
                 if e["event"] == "ReportSubmitted"]  # fmt: skip
    assert len(submitted) == 1 and submitted[0]["args"]["epoch"] == 1
    assert distributor.functions.latestTotal().call() == 7 * 10**18
