"""Follow the chain to ``head - confirmations``: ingest market and distributor events, detect reorgs.

Each step (``chain.block_follower.BlockFollower``) reads one block range ``(cursor, to]``; this module commits
its events, the hashes of the blocks that carried them and the new cursor in one transaction. Before a step,
the stored cursor hash is compared with the chain's; on a mismatch the follower walks the stored block hashes
back to the newest one the chain still has and rolls back everything above it (payments, served marks,
attributions, submissions, drafts and their signatures), then re-reads the chain from there.
"""

from __future__ import annotations

import time

from attribution_oracle.chain.block_follower import BlockFollower, FollowStep
from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.logs import log

MAX_STEP_BLOCKS = 2_000

Step = FollowStep  # what one follower step did (the chain follower's own record)


class ChainFollower:
    """Ingests InferencePaid / FeeSplit / InferenceServed and ReportSubmitted / ReportVetoed into the DB.

    The reading and the reorg walk are ``chain.block_follower.BlockFollower``'s (the CLI's catalog sync uses
    the same one); this class is its sink: what the oracle stores, and what it forgets on a rollback.
    """

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
        self.on_rollback: list = []
        self.blocks = BlockFollower(
            client,
            self.contracts,
            self,
            start_block=deployment.block_number,
            confirmations=confirmations,
            max_step_blocks=MAX_STEP_BLOCKS,
        )

    # ------------------------------------------------------------ the sink

    def cursor(self) -> tuple[int, str] | None:
        """The last block ingested ``(number, hash)``."""
        return self.db.cursor()

    def known_blocks(self) -> list[tuple[int, str]]:
        """Every stored block hash, newest first."""
        return list(self.db.query("SELECT number, hash FROM blocks ORDER BY number DESC"))

    def commit(self, events: list[dict], end: int, end_hash: str) -> None:
        """Store one range's events, block hashes and cursor in one transaction."""
        self._commit(events, end, end_hash)

    # ------------------------------------------------------------ following

    def check_reorg(self) -> int | None:
        """Roll back to the newest stored block the chain still has if the cursor block changed; returns it."""
        return self.blocks.check_reorg()

    def rollback(self, ancestor: int) -> None:
        """Forget everything above block ``ancestor`` (one transaction), then tell the other parts."""
        old = self.db.cursor()
        self.db.rollback(ancestor)
        for callback in self.on_rollback:
            callback(ancestor)
        log("reorg", undone_from=ancestor + 1, old_cursor=old[0] if old else None)

    def step(self) -> Step:
        """Check for a reorg, then ingest the next confirmed block range."""
        return self.blocks.step()

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
