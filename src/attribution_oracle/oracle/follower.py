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
from attribution_oracle.chain.events import fetch_events
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
        self.on_rollback: list = []

    def _hash(self, number: int) -> str | None:
        try:
            block = self.client.block(number)
        except Exception as exc:  # web3 raises BlockNotFound for heights beyond the head
            if type(exc).__name__ == "BlockNotFound":
                return None
            raise
        return block["hash"].to_0x_hex()

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
        """Forget everything above block ``ancestor`` (one transaction)."""
        with self.db.transaction() as db:
            db.execute("DELETE FROM blocks WHERE number > ?", (ancestor,))
            db.execute("DELETE FROM payments WHERE block_number > ?", (ancestor,))
            db.execute("DELETE FROM served WHERE block_number > ?", (ancestor,))
            db.execute("DELETE FROM attributions WHERE request_id NOT IN (SELECT request_id FROM served)")
            db.execute("DELETE FROM attributions WHERE request_id NOT IN (SELECT request_id FROM payments)")
            db.execute("DELETE FROM submissions WHERE block_number > ?", (ancestor,))
            stale = [e for (e,) in db.execute("SELECT epoch FROM epochs WHERE to_block > ?", (ancestor,))]
            for epoch in stale:
                db.execute("DELETE FROM epochs WHERE epoch = ?", (epoch,))
                db.execute("DELETE FROM signatures WHERE epoch = ?", (epoch,))
                db.execute("DELETE FROM disagreements WHERE epoch = ?", (epoch,))
            db.execute("UPDATE epochs SET status = 'signed' WHERE status = 'submitted' AND epoch NOT IN "
                       "(SELECT epoch FROM submissions)")  # fmt: skip
            row = db.execute("SELECT number, hash FROM blocks WHERE number <= ? ORDER BY number DESC LIMIT 1",
                             (ancestor,)).fetchone()  # fmt: skip
            if row is None or row[0] != ancestor:
                db.execute("DELETE FROM meta WHERE key IN ('cursor_number', 'cursor_hash')")  # re-read from the start
            else:
                OracleDB.set_meta(db, "cursor_number", str(row[0]))
                OracleDB.set_meta(db, "cursor_hash", row[1])
        for callback in self.on_rollback:
            callback(ancestor)

    def step(self) -> Step:
        """Check for a reorg, then ingest the next confirmed block range."""
        reorg_to = self.check_reorg()
        head = self.client.block("latest")["number"]
        target = head - self.confirmations
        cursor = self.db.cursor()
        start = cursor[0] + 1 if cursor else self.deployment.block_number
        if target < start:
            return Step(head, start - 1, 0, reorg_to)
        end = min(target, start + MAX_STEP_BLOCKS - 1)
        before = self._hash(end)
        events = fetch_events(self.client, self.contracts, start, end)
        after = self._hash(end)
        if before is None or before != after:
            return Step(head, start - 1, 0, reorg_to)  # the chain moved under us: read again next step
        self._commit(events, end, after)
        return Step(head, end, len(events), reorg_to)

    def _commit(self, events: list[dict], end: int, end_hash: str) -> None:
        now = time.time()
        splits = {e["args"]["requestId"]: e["args"] for e in events if e["event"] == "FeeSplit"}
        with self.db.transaction() as db:
            for event in events:
                name, args, block = event["event"], event["args"], event["blockNumber"]
                db.execute("INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", (block, event["blockHash"]))
                if name == "InferencePaid":
                    split = splits[args["requestId"]]
                    db.execute(
                        "INSERT OR REPLACE INTO payments VALUES (?, ?, ?, ?, ?)",
                        (args["requestId"], args["modelId"], block, str(split["contributorsAmount"]),
                         str(split["datanetOwnersAmount"])),
                    )  # fmt: skip
                elif name == "InferenceServed":
                    db.execute("INSERT OR REPLACE INTO served VALUES (?, ?, ?)", (args["requestId"], block, now))
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
            db.execute("INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", (end, end_hash))
            OracleDB.set_meta(db, "cursor_number", str(end))
            OracleDB.set_meta(db, "cursor_hash", end_hash)
