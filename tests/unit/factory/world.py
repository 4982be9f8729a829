"""A small Datanet world for factory unit tests: a blob store and a catalog fed with real event records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.catalog import Catalog
from attribution_oracle.store.merkle import MerkleTree

OWNER = "0x1111111111111111111111111111111111111111"
CONTRIBUTORS = [
    "0xA11cE00000000000000000000000000000000001",
    "0xB0b0000000000000000000000000000000000002",
    "0xCa501000000000000000000000000000000000C3",
]
KEY = "31337:0xRegistry:factory-tests"
TEXTS = [
    "Inspect the hive every nine days in spring; look for eggs, queen cells and stores.",
    "A smoker calms the bees: puff gently at the entrance and under the crown board.",
    "Varroa mites are counted with an alcohol wash of three hundred bees in autumn.",
    "Honey is ready when most cells are capped and the moisture is under eighteen percent.",
    "Bees forage up to three miles from the hive when the nectar flow is poor.",
    "The waggle dance tells other foragers the direction and distance of the flowers.",
    "Propolis seals small gaps; bees collect it from the resin of buds and bark.",
    "Winter clusters keep the queen warm; do not open the hive on cold days.",
]


@dataclass
class World:
    """The store, the catalog and what was published."""

    store: BlobStore
    catalog: Catalog
    hashes: list[str]
    root: str


def _ev(event: str, block: int, log: int = 0, /, **args: Any) -> dict[str, Any]:
    tx = "0x" + hashlib.sha256(f"tx {block} {log}".encode()).hexdigest()
    return {"event": event, "args": args, "blockNumber": block, "logIndex": log, "transactionHash": tx}


def make_world(
    root: Path, texts: list[str] = TEXTS, publish: bool = True, contributors: list[str] | None = None
) -> World:
    """One Datanet with every text contributed and approved; version 1 published unless ``publish`` is False.
    ``contributors`` names the contributor of each text (default: the three ``CONTRIBUTORS`` in turn)."""
    contributors = contributors or [CONTRIBUTORS[i % len(CONTRIBUTORS)] for i in range(len(texts))]
    store = BlobStore(root / "blobs")
    catalog = Catalog(root / "catalog.sqlite", KEY)
    hashes = [store.put_bytes(t.encode()) for t in texts]
    events = [_ev("DatanetCreated", 1, datanetId=1, owner=OWNER, name="bees", metadataURI="", minStake=0, feePaid=0)]
    block = 2
    for i, digest in enumerate(hashes):
        events.append(
            _ev("ContributionSubmitted", block, contributionId=i + 1, datanetId=1,
                contributor=contributors[i], contentHash=bytes.fromhex(digest),
                uri=f"sha256://{digest}", size=len(texts[i]), stake=0)
        )  # fmt: skip
        events.append(
            _ev("ContributionApproved", block + 1, contributionId=i + 1, datanetId=1, curator=OWNER,
                approvalIndex=i, stakeReturned=0)
        )  # fmt: skip
        block += 2
    tree_root = MerkleTree([bytes.fromhex(h) for h in hashes]).root
    if publish:
        events.append(
            _ev("VersionPublished", block, datanetId=1, version=1, merkleRoot=tree_root, count=len(hashes),
                manifestURI="sha256://" + "0" * 64)
        )  # fmt: skip
    catalog.apply(events, block, "0x" + hashlib.sha256(f"block {block}".encode()).hexdigest())
    return World(store, catalog, hashes, tree_root.hex())
