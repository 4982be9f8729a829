"""Veto and rotation on a real Anvil with real node processes (issue 13, attacks 1, 2 and 7 end to end).

Three nodes (m = 2) settle paid, served inferences under a one-hour veto window. Governance vetoes the first
report while it is pending: the nodes pick it up (the veto bumps the config digest), report again above the
vetoed epoch and cover the vetoed inferences. Governance then rotates the oracle set through the timelock to
nodes 1 and 2 only: the nodes re-read the config and keep settling under the new digest. At the end every
inference served on the chain is in exactly one report still standing, and the cumulative total is the sum of
the pools to the wei.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from cli_harness import free_port
from oracle_harness import ORACLE_KEYS, Driver, Market, NodeProcess, accepted_reports, make_market, wait_settled

from attribution_oracle.chain.wallets import dev_account
from attribution_oracle.store.blobs import BlobStore

CLAIM_DELAY_S = 3_600


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    m = make_market(tmp_path_factory.mktemp("veto"), claim_delay_s=CLAIM_DELAY_S)
    try:
        yield m
    finally:
        m.anvil.stop()


def stores(market: Market) -> list[BlobStore]:
    return [BlobStore(market.root / f"node{i}" / "blobs") for i in (1, 2, 3)]


def submitted(market: Market) -> list[dict]:
    distributor = market.contract("RewardDistributor")
    return [
        dict(e["args"]) for e in distributor.events.ReportSubmitted.get_logs(from_block=market.deployment.block_number)
    ]


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_veto_then_rotation_every_later_inference_settles_exactly_once(market: Market) -> None:
    ports = [free_port() for _ in range(3)]
    nodes = [NodeProcess(market, i, ports) for i in (1, 2, 3)]
    distributor = market.contract("RewardDistributor")
    governance = dev_account(0)
    client = market.client
    try:
        for node in nodes:
            node.start()
        driver = Driver(market)
        first = driver.pay(6)
        driver.serve(first)
        report = wait_for(lambda: submitted(market), 180, "the first report")[0]
        vetoed_epoch = int(report["epoch"])
        client.send(distributor.functions.veto(vetoed_epoch), governance, "veto the first report")
        assert distributor.functions.latestEpoch().call() < vetoed_epoch  # the floor came back

        # the nodes report again above the vetoed epoch, covering the vetoed inferences again
        second = driver.pay(6)
        driver.serve(second)
        reports, pools = wait_settled(market, stores(market), timeout_s=180)
        assert all(r.epoch > vetoed_epoch for r in reports)
        assert {r[0] for r in first} <= {i.request_id for r in reports for i in r.inferences}

        # rotate to nodes 1 and 2 only (m = 2), through the timelock
        keep = sorted((dev_account(k).address for k in ORACLE_KEYS[:2]), key=lambda a: int(a, 16))
        client.send(distributor.functions.proposeOracleConfig(keep, 2), governance, "propose rotation")
        wait = distributor.functions.governanceDelay().call()
        market.rpc_call("evm_increaseTime", [int(wait) + 1])
        market.rpc_call("evm_mine", [])
        client.send(distributor.functions.applyOracleConfig(), governance, "apply rotation")
        rotated_at = distributor.functions.latestEpoch().call()
        third = driver.pay(6)
        driver.serve(third)
        reports, pools = wait_settled(market, stores(market), timeout_s=240)

        counts = Counter(i.request_id for r in reports for i in r.inferences)
        assert set(counts) == set(pools) and max(counts.values()) == 1, "every served inference settled once"
        assert reports[-1].total_cumulative == sum(pools.values()) == distributor.functions.latestTotal().call()
        assert reports[-1].epoch > rotated_at
        assert reports[-1].config_digest == bytes(distributor.functions.configDigest().call())
        assert [r.epoch for r in accepted_reports(market, stores(market))] == sorted({r.epoch for r in reports})
    finally:
        for node in nodes:
            node.kill9()
