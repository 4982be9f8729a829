"""Oracle nodes under faults, on a real Anvil with real node processes (3 nodes, m = 2).

One chain for the module; the tests run in order and each adds paid, served inferences, then checks that
every served inference on the chain is settled exactly once and that the accepted cumulative total equals the
sum of the contributor and Datanet-owner pools to the wei. The market's model is a real factory-trained tiny
model and the nodes attribute with its real scorer (`--scorer factory`); only the wrong-report node uses a
test-only scorer (the real one, perturbed).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from cli_harness import free_port
from oracle_harness import Driver, Market, NodeProcess, accepted_reports, make_market, served_pools, wait_settled

from attribution_oracle.store.blobs import BlobStore


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    """The chain and market, stopped at the end."""
    m = make_market(tmp_path_factory.mktemp("oracle"))
    try:
        yield m
    finally:
        m.anvil.stop()


@pytest.fixture(scope="module")
def ports() -> list[int]:
    """The three nodes' HTTP ports (fixed for the module so peers find each other)."""
    return [free_port() for _ in range(3)]


@pytest.fixture
def nodes(market: Market, ports: list[int]) -> Iterator[list[NodeProcess]]:
    """Three node processes (not started); every one still running is killed afterwards."""
    made = [NodeProcess(market, i, ports) for i in (1, 2, 3)]
    try:
        yield made
    finally:
        for node in made:
            node.kill9()


def stores(market: Market) -> list[BlobStore]:
    """Every node's content store."""
    return [BlobStore(market.root / f"node{i}" / "blobs") for i in (1, 2, 3)]


def check_exactly_once(market: Market) -> tuple[int, int]:
    """Every served request settled once; cumulative total == sum of pools; returns (inferences, total)."""
    reports, pools = wait_settled(market, stores(market))
    counts = Counter(i.request_id for r in reports for i in r.inferences)
    assert set(counts) == set(pools), "reports settle exactly the served requests"
    assert max(counts.values()) == 1, f"settled twice: {[r for r, c in counts.items() if c > 1][:5]}"
    for report in reports:
        for item in report.inferences:
            assert sum(item.shares.values()) == pools[item.request_id]
    final = reports[-1]
    assert final.total_cumulative == sum(pools.values())
    distributor = market.contract("RewardDistributor")
    assert distributor.functions.latestTotal().call() == sum(pools.values())
    epochs = [r.epoch for r in reports]
    assert epochs == sorted(set(epochs))
    return len(pools), final.total_cumulative


def test_three_nodes_settle_every_inference_exactly_once_despite_kill_9(market, nodes):
    driver = Driver(market)
    for node in nodes:
        node.start()
    rng = random.Random(8)
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            time.sleep(rng.uniform(0.3, 1.0))
            victim = rng.choice(nodes)
            victim.kill9()
            time.sleep(rng.uniform(0.0, 0.3))
            victim.start()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        for _ in range(5):
            driver.serve(driver.pay(64))
            time.sleep(1.0)
        while sum(n.kills for n in nodes) < 20:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)
    for node in nodes:
        if not node.alive():
            node.start()
    count, total = check_exactly_once(market)
    assert count >= 300
    assert sum(n.kills for n in nodes) >= 20
    assert total > 0


def test_nodes_wait_for_a_restarted_anvil_and_resume(market, nodes):
    driver = Driver(market, prompts=10_000)
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_ready()
    driver.serve(driver.pay(40))
    market.anvil.stop()  # SIGTERM: Anvil dumps its state (--state) and exits; the nodes see RPC errors
    time.sleep(3)
    assert all(n.alive() for n in nodes), "nodes survive a dead RPC"
    market.anvil.start(block_time=0.2)
    driver.serve(driver.pay(40))
    check_exactly_once(market)
    assert all(n.alive() for n in nodes)
    retried = [line for n in nodes for line in n.log_lines() if line.get("event") == "step failed, retrying"]
    assert retried, "the nodes logged their retries"


def test_a_reorg_is_rolled_back_and_reprocessed_without_double_payment(market, nodes):
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_ready()
    before = set(served_pools(market))
    snapshot = market.rpc_call("evm_snapshot", [])
    driver = Driver(market, prompts=20_000)
    receipts = driver.pay(30, tag="r")
    driver.serve(receipts, tag="r")
    # let the nodes process (and perhaps settle) these blocks before they vanish
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses = [n.status() for n in nodes]
        if all(s and s["served"] >= len(before) + 30 for s in statuses):
            break
        time.sleep(0.3)
    assert market.rpc_call("evm_revert", [snapshot]) is True
    # different transactions on the new branch: an unrelated transfer first, then the same payments, but only
    # the first half served (the other half must not be paid to anyone)
    token = market.contract("OpenToken")
    from attribution_oracle.chain.wallets import dev_account

    market.client.send(token.functions.transfer(dev_account(1).address, 1), dev_account(5), "shift blocks")
    again = Driver(market, prompts=20_000)
    receipts = again.pay(30, tag="r")
    again.serve(receipts[:15], tag="r")
    count, _ = check_exactly_once(market)
    unserved = {r[0] for r in receipts[15:]}
    settled = {i.request_id for r in accepted_reports(market, stores(market)) for i in r.inferences}
    assert not unserved & settled
    assert count == len(before) + 15
    reorgs = [line for n in nodes for line in n.log_lines() if line.get("event") == "reorg"]
    assert reorgs, "the nodes detected the reorg"


def test_one_node_down_still_settles_with_two_of_three(market, nodes):
    nodes[0].start()
    nodes[1].start()
    driver = Driver(market, prompts=30_000)
    driver.serve(driver.pay(64))
    check_exactly_once(market)
    assert not nodes[2].alive()


def test_a_node_signing_a_wrong_report_is_outvoted_and_logged(market, ports):
    honest = [NodeProcess(market, 1, ports), NodeProcess(market, 2, ports)]
    wrong = NodeProcess(market, 3, ports, extra=["--scorer", "oracle_scorers:wrong_provider"], state="wrong")
    try:
        for node in (*honest, wrong):
            node.start()
        driver = Driver(market, prompts=40_000)
        # The wrong node starts from an empty state and must catch up on the chain's history first; epochs
        # settled before it has caught up never get a draft of its own. So: rounds of payments until the
        # outvoted node has built a different report for an epoch the others settled. It learns that from the
        # chain (the accepted report differs from its own) and logs the differing leaves; honest nodes also log
        # the wrong signatures they happen to receive while collecting.
        logged: list[dict] = []
        for _round in range(4):
            driver.serve(driver.pay(32))
            reports, _ = wait_settled(market, stores(market))
            check_exactly_once(market)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                logged = [x for n in (*honest, wrong) for x in n.log_lines() if x.get("event") == "disagreement"]
                if any(line["node"] == "oracle3" and line["leaves"] for line in logged):
                    break
                time.sleep(0.5)
            if any(line["node"] == "oracle3" and line["leaves"] for line in logged):
                break
        assert any(line["node"] == "oracle3" and line["leaves"] for line in logged), "the differing leaves are logged"
        assert {line["node"] for line in logged} >= {"oracle3"}
        wrong_uris = {line["ours"] for line in logged if line["node"] == "oracle3"}
        accepted_uris = {"sha256://" + hashlib.sha256(r.canonical_json()).hexdigest() for r in reports}
        assert wrong_uris and not wrong_uris & accepted_uris, "the wrong report was never accepted"
    finally:
        for node in (*honest, wrong):
            node.kill9()
