"""Contributing to a Datanet without exposing the content hash to front-runners: commit, then reveal.

``DatanetRegistry.contribute`` shows the content hash in the mempool, where anyone can copy it and be credited
first. ``contribute_bound`` instead sends ``commitContribution(keccak256(abi_encode(datanetId, contentHash,
contributor, salt)))`` (which reveals nothing), waits for it to be mined, then sends ``revealContribution`` in a
later block; a reveal takes precedence over any copy submitted after the commitment (see the contract).
"""

from __future__ import annotations

import os
import time

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from attribution_oracle.chain.client import ChainClient

REVEAL_WAIT_S = 30.0


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
    salt = os.urandom(32)
    commitment = contribution_commitment(datanet_id, content_hash, signer.address, salt)
    committed = client.send(registry.functions.commitContribution(commitment), signer, f"commit {what}")
    deadline = time.monotonic() + REVEAL_WAIT_S
    while client.w3.eth.block_number <= committed["blockNumber"] and time.monotonic() < deadline:
        time.sleep(0.2)  # automining chains are already past it; others mine the next block soon
    reveal = registry.functions.revealContribution(datanet_id, content_hash, uri, size, stake, salt)
    return client.send(reveal, signer, f"reveal {what}")
