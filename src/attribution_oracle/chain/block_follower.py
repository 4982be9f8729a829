"""One chain follower: read contract events block range by block range into a store, surviving reorgs.

Both the CLI's catalog sync and the oracle node follow the chain through ``BlockFollower``. The store it
writes into (an ``EventSink``) keeps a cursor ``(number, hash)`` and the hashes of some blocks it read. Each
step first compares the cursor hash with the chain's; on a mismatch (a reorg) it walks the stored hashes back
to the newest block the chain still has and asks the sink to forget everything above it. A sink that cannot
undo block by block may forget more (the catalog starts again from the deployment): the follower reads the
cursor again afterwards. Then the next range ``(cursor, min(head - confirmations, cursor + max_step)]`` is read,
and committed only if the range's last block kept its hash while its logs were read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from web3.contract import Contract

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.event_decoding import LogDecoder, fetch_events, rpc_request
from attribution_oracle.chain.web3_client import ChainClient

DEFAULT_MAX_STEP_BLOCKS = 2_000


class EventSink(Protocol):
    """Where a ``BlockFollower`` puts what it reads; every method is one transaction of the store."""

    def cursor(self) -> tuple[int, str] | None:
        """The last block read, ``(number, lowercase 0x hash)``, or None before the first."""

    def known_blocks(self) -> Iterable[tuple[int, str]]:
        """Stored ``(number, hash)`` pairs, newest first, to find the newest block a reorg left in place."""

    def rollback(self, ancestor: int) -> None:
        """Forget everything above block ``ancestor`` (forgetting more is allowed; ``cursor`` says where it is)."""

    def commit(self, events: list[dict[str, Any]], end: int, end_hash: str) -> None:
        """Store the decoded ``events`` of a range ending at block ``end`` and move the cursor there."""


@dataclass
class FollowStep:
    """What one follower step did: chain head, cursor after the step, events read, reorg ancestor if any."""

    head: int
    cursor: int
    events: int
    reorg_to: int | None = None


class BlockFollower:
    """Reads the events of ``contracts`` from ``start_block`` on into ``sink``, ``confirmations`` behind the head."""

    def __init__(
        self,
        client: ChainClient,
        contracts: list[Contract],
        sink: EventSink,
        *,
        start_block: int,
        confirmations: int = 0,
        max_step_blocks: int = DEFAULT_MAX_STEP_BLOCKS,
    ) -> None:
        """Follow on ``client``'s chain; the first range starts at ``start_block`` (clamped at 0)."""
        if confirmations < 0:
            raise ValueError("confirmations must be >= 0")
        if max_step_blocks < 1:
            raise ValueError("max_step_blocks must be >= 1")
        self.client = client
        self.contracts = contracts
        self.sink = sink
        self.start_block = max(0, start_block)
        self.confirmations = confirmations
        self.max_step_blocks = max_step_blocks
        self.decoder = LogDecoder(contracts)  # topic tables built once

    def block_hash(self, number: int) -> str | None:
        """The chain's hash of block ``number`` (None beyond the head); a raw call, no web3 formatters."""
        block = rpc_request(self.client, "eth_getBlockByNumber", [hex(number), False])
        return None if block is None else str(block["hash"]).lower()

    def head(self) -> int:
        """The chain's newest block number."""
        return int(rpc_request(self.client, "eth_blockNumber", []), 16)

    def check_reorg(self) -> int | None:
        """If the cursor block is no longer on the chain, roll the sink back to the newest block that is."""
        cursor = self.sink.cursor()
        if cursor is None or self.block_hash(cursor[0]) == cursor[1].lower():
            return None
        ancestor = self.start_block - 1
        for number, stored_hash in self.sink.known_blocks():
            if number < self.start_block:
                break
            if self.block_hash(number) == stored_hash.lower():
                ancestor = number
                break
        self.sink.rollback(ancestor)
        return ancestor

    def step(self) -> FollowStep:
        """Check for a reorg, then read and commit the next confirmed block range (if any)."""
        reorg_to = self.check_reorg()
        head = self.head()
        target = head - self.confirmations
        cursor = self.sink.cursor()
        start = cursor[0] + 1 if cursor else self.start_block
        if target < start:
            return FollowStep(head, start - 1, 0, reorg_to)
        end = min(target, start + self.max_step_blocks - 1)
        before = self.block_hash(end)
        events = fetch_events(self.client, self.contracts, start, end, self.decoder)
        after = self.block_hash(end)
        if before is None or before != after:
            return FollowStep(head, start - 1, 0, reorg_to)  # the chain moved under us: read again next step
        self.sink.commit(events, end, after)
        return FollowStep(head, end, len(events), reorg_to)

    def catch_up(self, max_steps: int = 10_000) -> FollowStep:
        """Step until the cursor reaches ``head - confirmations``; returns the last step (reorgs summed in)."""
        reorg_to, events = None, 0
        step = self.step()
        for _ in range(max_steps):
            events += step.events
            reorg_to = step.reorg_to if step.reorg_to is not None else reorg_to
            if step.cursor >= step.head - self.confirmations:
                break
            step = self.step()
        return FollowStep(step.head, step.cursor, events, reorg_to)


CATALOG_CONTRACTS = ("DatanetRegistry", "ModelRegistry")


def sync_catalog(client: ChainClient, deployment: Deployment, catalog: EventSink) -> int:
    """Bring a catalog (``store.catalog.Catalog``) up to the chain head, rolling back a reorg; returns the head.

    The catalog mirrors DatanetRegistry and ModelRegistry from two blocks before the recorded deployment
    block (a margin: that block is DatanetRegistry's own).
    """
    contracts = [client.contract(deployment, name) for name in CATALOG_CONTRACTS]
    follower = BlockFollower(client, contracts, catalog, start_block=deployment.block_number - 2)
    return follower.catch_up().head
