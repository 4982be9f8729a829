"""Time-based epochs and the missing-record grace rule, on a real Anvil with three node processes (m = 2).

The nodes attribute with the real factory scorer of the market's trained tiny model (`--scorer factory`)."""

from __future__ import annotations

import time

from cli_harness import free_port
from oracle_harness import Driver, NodeProcess, make_market, wait_settled

from attribution_oracle.chain.wallets import dev_account
from attribution_oracle.store.blobs import BlobStore

EPOCH_SECONDS = 2
GRACE_BLOCKS = 10


def test_time_epochs_settle_and_missing_records_fall_back_to_equal_shares(tmp_path):
    market = make_market(tmp_path, threshold=2, epoch_blocks=10)
    ports = [free_port() for _ in range(3)]
    extra = ["--epoch-seconds", str(EPOCH_SECONDS), "--record-grace-blocks", str(GRACE_BLOCKS)]
    nodes = [NodeProcess(market, i, ports, extra=extra) for i in (1, 2, 3)]
    stores = [BlobStore(n.home / "blobs") for n in nodes]
    try:
        for node in nodes:
            node.start()
        driver = Driver(market)
        receipts = driver.pay(24)
        missing = frozenset(r[0] for r in receipts[::6])  # 4 requests served on-chain whose record never appears
        driver.serve(receipts, without_record=missing)
        time.sleep(1.0)
        driver.serve(driver.pay(16))  # later requests must not wait behind the missing ones
        reports, pools = wait_settled(market, stores, timeout_s=120)
        settled = {i.request_id: i for r in reports for i in r.inferences}
        assert set(settled) == set(pools) and len(settled) == 40
        assert sum(len(r.inferences) for r in reports) == 40, "settled exactly once"
        assert reports[-1].total_cumulative == sum(pools.values())
        contributors = {dev_account(2).address, dev_account(3).address}
        for request_id in missing:
            item = settled[request_id]
            assert item.scores == {}, "no record: no scores"
            assert sum(item.shares.values()) == pools[request_id]
            paid = [item.shares[a] for a in contributors]
            assert max(paid) - min(paid) <= 1, "the contributors pool is split equally"
        assert any(settled[r].scores for r in settled if r not in missing)
        logged = [line for n in nodes for line in n.log_lines() if "missing after the grace" in line.get("event", "")]
        assert {line["request_id"] for line in logged} == set(missing)
        # time epochs: each report ends at the last block of its epoch (block timestamps // epoch seconds)
        for report in reports:
            end = market.client.block(report.to_block)["timestamp"]
            after = market.client.block(report.to_block + 1)["timestamp"]
            assert end // EPOCH_SECONDS == report.epoch < after // EPOCH_SECONDS
    finally:
        for node in nodes:
            node.stop()
        market.anvil.stop()
