"""Follow the chain to ``head - confirmations``: ingest market and distributor events, detect reorgs.

Each step reads one block range ``(cursor, to]`` and commits its events, the hashes of the blocks that
carried them and the new cursor in one transaction. Before a step, the stored cursor hash is compared with
the chain's; on a mismatch the follower walks its stored block hashes back to the newest one the chain still
has and rolls back everything above it (payments, served marks, attributions, submissions, drafts and their
signatures), then re-reads the chain from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from attribution_oracle.chain.client import ChainClient
from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.events import LogDecoder, fetch_events, rpc_request
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.logs import log

MAX_STEP_BLOCKS = 2_000


@dataclass
class Step:
    """What one follower step did."""

    head: int
    cursor: int
    events: int
    reorg_to: int | None = None


class ChainFollower:
    """Ingests InferencePaid / FeeSplit / InferenceServed and ReportSubmitted / ReportVetoed into the DB."""

    def __init__(self, client: ChainClient, deployment: Deployment, db: OracleDB, confirmations: int) -> None:
        """Follow ``deployment`` on ``client``'s chain, ``confirmations`` blocks behind the head."""
        self.client = client
        self.deployment = deployment
        self.db = db
        self.confirmations = confirmations
        self.contracts = [
            client.contract(deployment, "InferenceMarket"),
            client.contract(deployment, "RewardDistributor"),
        ]
        self.decoder = LogDecoder(self.contracts)  # topic tables built once
        self.on_rollback: list = []

    def _hash(self, number: int) -> str | None:
        """The chain's hash of block ``number`` (None beyond the head); a raw call, no web3 block formatters."""
        block = rpc_request(self.client, "eth_getBlockByNumber", [hex(number), False])
        return None if block is None else str(block["hash"]).lower()

    def _head(self) -> int:
        return int(rpc_request(self.client, "eth_blockNumber", []), 16)

    def check_reorg(self) -> int | None:
        """Roll back to the newest stored block the chain still has if the cursor block changed; returns it."""
        cursor = self.db.cursor()
        if cursor is None or self._hash(cursor[0]) == cursor[1]:
            return None
        ancestor = self.deployment.block_number - 1
        for number, block_hash in self.db.query("SELECT number, hash FROM blocks ORDER BY number DESC"):
            if self._hash(number) == block_hash:
                ancestor = number
                break
        self.rollback(ancestor)
        log("reorg", undone_from=ancestor + 1, old_cursor=cursor[0])
        return ancestor

    def rollback(self, ancestor: int) -> None:
        """Forget everything above block ``ancestor`` (one transaction), then tell the other parts."""
        self.db.rollback(ancestor)
        for callback in self.on_rollback:
            callback(ancestor)

    def step(self) -> Step:
        """Check for a reorg, then ingest the next confirmed block range."""
        reorg_to = self.check_reorg()
        head = self._head()
        target = head - self.confirmations
        cursor = self.db.cursor()
        start = cursor[0] + 1 if cursor else self.deployment.block_number
        if target < start:
            return Step(head, start - 1, 0, reorg_to)
        end = min(target, start + MAX_STEP_BLOCKS - 1)
        before = self._hash(end)
        events = fetch_events(self.client, self.contracts, start, end, self.decoder)
        after = self._hash(end)
        if before is None or before != after:
            return Step(head, start - 1, 0, reorg_to)  # the chain moved under us: read again next step
        self._commit(events, end, after)
        return Step(head, end, len(events), reorg_to)

    def _commit(self, events: list[dict], end: int, end_hash: str) -> None:
        now = time.time()
        splits = {e["args"]["requestId"]: e["args"] for e in events if e["event"] == "FeeSplit"}
        blocks = {e["blockNumber"]: e["blockHash"] for e in events}
        blocks[end] = end_hash
        payments, served, charged, inputs = [], [], [], []
        with self.db.transaction() as db:
            for event in events:
                name, args, block = event["event"], event["args"], event["blockNumber"]
                if name == "InferencePaid":
                    split = splits[args["requestId"]]
                    payments.append((args["requestId"], args["modelId"], block, str(split["contributorsAmount"]),
                                     str(split["datanetOwnersAmount"])))  # fmt: skip
                    if "inputHash" in args:
                        inputs.append((args["requestId"], "0x" + bytes(args["inputHash"]).hex()))
                elif name == "InferenceServed":
                    served.append((args["requestId"], block, now))
                elif name == "InferenceCharged":  # per-token: the pools of the charged amount replace the maximum's
                    charged.append((str(args["contributorsAmount"]), str(args["datanetOwnersAmount"]),
                                    args["requestId"]))  # fmt: skip
                elif name == "ReportSubmitted":
                    db.execute(
                        "INSERT OR REPLACE INTO submissions (epoch, report_uri, rewards_root, total_cumulative, "
                        "block_number) VALUES (?, ?, ?, ?, ?)",
                        (args["epoch"], args["reportURI"], "0x" + args["rewardsRoot"].hex(),
                         str(args["totalCumulative"]), block),
                    )  # fmt: skip
                    db.execute("UPDATE epochs SET status = 'submitted' WHERE epoch = ?", (args["epoch"],))
                elif name == "ReportVetoed":
                    db.execute("UPDATE submissions SET vetoed = 1 WHERE epoch = ?", (args["epoch"],))
            db.executemany("INSERT OR REPLACE INTO payments VALUES (?, ?, ?, ?, ?)", payments)
            db.executemany("INSERT OR REPLACE INTO payment_inputs VALUES (?, ?)", inputs)
            db.executemany("INSERT OR REPLACE INTO served VALUES (?, ?, ?)", served)
            db.executemany(
                "UPDATE payments SET contributors_amount = ?, datanet_owners_amount = ? WHERE request_id = ?", charged
            )
            db.executemany("INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", sorted(blocks.items()))
            OracleDB.set_meta(db, "cursor_number", str(end))
            OracleDB.set_meta(db, "cursor_hash", end_hash)
