"""Plain records returned by catalog queries.

Amounts (stakes, fees, prices) are integers in wei; content hashes and Merkle roots are canonical
digests (64 lowercase hex characters, no ``0x``); addresses are checksummed strings as the chain gave them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONTRIBUTION_STATUSES",
    "Contribution",
    "Datanet",
    "LocalFile",
    "Model",
    "ModelSource",
    "Version",
]

#: Every status a contribution can have in the catalog.
CONTRIBUTION_STATUSES = ("pending", "approved", "rejected", "slashed", "withdrawn")


@dataclass(frozen=True, slots=True)
class Datanet:
    """A Datanet as mirrored from its events, with counts derived from its contributions and versions."""

    id: int
    owner: str
    name: str
    metadata_uri: str
    min_stake: int
    fee_paid: int
    curators: tuple[str, ...]
    contribution_count: int
    approved_count: int
    version_count: int
    created_block: int


@dataclass(frozen=True, slots=True)
class Contribution:
    """A contribution to a Datanet.

    ``stake`` is what was escrowed at submission (the chain zeroes it once decided); ``curator`` is who
    approved or rejected it; ``approval_index`` is its 0-based place among the Datanet's approved
    contributions (``None`` unless approved).
    """

    id: int
    datanet_id: int
    contributor: str
    content_hash: str
    uri: str
    size: int
    stake: int
    status: str
    approval_index: int | None
    curator: str | None
    stake_returned: int | None
    stake_slashed: int | None
    submitted_block: int
    decided_block: int | None


@dataclass(frozen=True, slots=True)
class Version:
    """A published Datanet version: the Merkle root over the first ``count`` approved content hashes."""

    datanet_id: int
    version: int
    merkle_root: str
    count: int
    manifest_uri: str
    published_block: int


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One (Datanet, version) pair a model was trained on."""

    datanet_id: int
    version: int


@dataclass(frozen=True, slots=True)
class Model:
    """A registered model, its fee split in basis points and the Datanet versions it was trained on."""

    id: int
    owner: str
    base_model_hash: str
    adapter_hash: str
    price: int
    owner_bps: int
    contributors_bps: int
    datanet_owners_bps: int
    metadata_uri: str
    active: bool
    registered_block: int
    sources: tuple[ModelSource, ...]


@dataclass(frozen=True, slots=True)
class LocalFile:
    """The local file a content hash was contributed from."""

    content_hash: str
    path: Path
    name: str
