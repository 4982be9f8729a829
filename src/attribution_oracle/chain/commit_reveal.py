"""Contributing to a Datanet without exposing the content hash to front-runners: commit, then reveal.

``DatanetRegistry.contribute`` shows the content hash in the mempool, where anyone can copy it and be credited
first. ``contribute_bound`` instead sends ``commitContribution(keccak256(abi_encode(datanetId, contentHash,
contributor, salt)))`` (which reveals nothing), waits for it to be mined, then sends ``revealContribution`` in a
later block; a reveal takes precedence over any copy submitted after the commitment (see the contract).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from attribution_oracle.chain.web3_client import ChainClient

REVEAL_WAIT_S = 120.0
#: Chains that mine only on demand (Anvil/Hardhat automine): after this wait the next block is mined by RPC.
AUTOMINE_WAIT_S = 1.0
LOCAL_CHAIN_ID = 31337


def contribution_commitment(datanet_id: int, content_hash: bytes, contributor: str, salt: bytes) -> bytes:
    """keccak256(abi_encode(datanetId, contentHash, contributor, salt)), as the registry computes it."""
    return keccak(encode(["uint256", "bytes32", "address", "bytes32"], [datanet_id, content_hash, contributor, salt]))


def contribute_bound(
    client: ChainClient,
    registry,
    signer: LocalAccount,
    datanet_id: int,
    content_hash: bytes,
    uri: str,
    size: int,
    stake: int,
    what: str = "contribution",
) -> dict:
    """Commit, wait for a later block, reveal; returns the reveal's receipt (with ``ContributionSubmitted``)."""
    item = BoundContribution(content_hash, uri, size, stake, what)
    return contribute_bound_many(client, registry, signer, datanet_id, [item])[0]


@dataclass(frozen=True)
class BoundContribution:
    """One contribution to commit and reveal: its content hash, URI, size in bytes, stake in wei and a label."""

    content_hash: bytes
    uri: str
    size: int
    stake: int
    what: str = "contribution"


def contribute_bound_many(
    client: ChainClient,
    registry,
    signer: LocalAccount,
    datanet_id: int,
    items: list[BoundContribution],
    on_revealed: Callable[[], None] | None = None,
) -> list[dict]:
    """Commit every item, wait once for a later block, then reveal every item; the reveals' receipts, in order.

    The same protection as ``contribute_bound`` (each reveal lands in a block after its commitment), but the
    commitments go out back to back and so do the reveals: a batch costs a few blocks, not two per file.
    ``on_revealed`` is called once per revealed item (a progress bar).
    """
    if not items:
        return []
    salts = [os.urandom(32) for _ in items]
    commits = [
        (
            registry.functions.commitContribution(
                contribution_commitment(datanet_id, item.content_hash, signer.address, salt)
            ),
            f"commit {item.what}",
        )
        for item, salt in zip(items, salts, strict=True)
    ]
    committed = client.send_many(commits, signer)
    _wait_for_a_later_block(client, max(int(r["blockNumber"]) for r in committed))
    reveals = [
        (
            registry.functions.revealContribution(datanet_id, item.content_hash, item.uri, item.size, item.stake, salt),
            f"reveal {item.what}",
        )
        for item, salt in zip(items, salts, strict=True)
    ]
    receipts = client.send_many(reveals, signer)
    if on_revealed is not None:
        for _ in receipts:
            on_revealed()
    return receipts


def _wait_for_a_later_block(client: ChainClient, block: int) -> None:
    """Return once the chain is past ``block`` (the reveal must land, and be simulated, in a later block).

    A public chain produces blocks by itself; a local dev chain that mines only on demand gets an ``evm_mine``."""
    started = time.monotonic()
    mined = False
    while client.w3.eth.block_number <= block:
        waited = time.monotonic() - started
        if waited > REVEAL_WAIT_S:
            raise TimeoutError(f"no block after {block} within {REVEAL_WAIT_S:.0f} s: cannot reveal the contribution")
        if (waited > AUTOMINE_WAIT_S or client.chain_id == LOCAL_CHAIN_ID) and not mined:
            mined = True
            with contextlib.suppress(Exception):  # not a dev chain: wait for its next block
                client.w3.provider.make_request("evm_mine", [])
        time.sleep(0.1)
