"""Named, typed reads of the contracts' structs: Datanets, contributions, versions, approved hashes, models.

Every struct is decoded by field name (web3 ``decode_tuples=True``) into a frozen dataclass, so reordering a
Vyper struct cannot make a reader pick the wrong field. Every module that reads these structs goes through
``ChainReader``; the approved-hash pager lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from attribution_oracle.chain.chain_errors import ChainError
from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient

__all__ = [
    "APPROVED_PAGE",
    "CONTRIBUTION_STATUS",
    "ChainReader",
    "ContributionOnChain",
    "DatanetOnChain",
    "ModelOnChain",
    "VersionOnChain",
]

APPROVED_PAGE = 100
CONTRIBUTION_STATUS = {0: "none", 1: "pending", 2: "approved", 3: "rejected", 4: "slashed", 5: "withdrawn"}


@dataclass(frozen=True)
class DatanetOnChain:
    """``DatanetRegistry.Datanet``."""

    datanet_id: int
    owner: str
    name: str
    metadata_uri: str
    min_stake: int
    contribution_count: int
    approved_count: int
    version_count: int
    created_at: int


@dataclass(frozen=True)
class ContributionOnChain:
    """``DatanetRegistry.Contribution`` (``content_hash`` as 32 bytes)."""

    contribution_id: int
    datanet_id: int
    contributor: str
    content_hash: bytes
    uri: str
    size: int
    stake: int
    status: int
    submitted_at: int


@dataclass(frozen=True)
class VersionOnChain:
    """``DatanetRegistry.Version`` of one Datanet."""

    datanet_id: int
    version: int
    merkle_root: bytes
    count: int
    manifest_uri: str
    published_at: int


@dataclass(frozen=True)
class ModelOnChain:
    """``ModelRegistry.Model`` with its ``FeeSplit`` flattened."""

    model_id: int
    owner: str
    base_model_hash: bytes
    adapter_hash: bytes
    price: int
    owner_bps: int
    contributors_bps: int
    datanet_owners_bps: int
    metadata_uri: str
    active: bool
    registered_at: int


class ChainReader:
    """Typed view functions of one deployment; contracts are bound with ``decode_tuples=True``."""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        """Bind to a client and a deployment."""
        self.client, self.deployment = client, deployment

    def _contract(self, name: str) -> Any:
        return self.client.contract(self.deployment, name, decode_tuples=True)

    @cached_property
    def datanets(self) -> Any:
        """The DatanetRegistry handle."""
        return self._contract("DatanetRegistry")

    @cached_property
    def models(self) -> Any:
        """The ModelRegistry handle."""
        return self._contract("ModelRegistry")

    @cached_property
    def market(self) -> Any:
        """The InferenceMarket handle."""
        return self._contract("InferenceMarket")

    # -------------------------------------------------------------- Datanets

    def datanet_count(self) -> int:
        """How many Datanets exist (ids run from 1 to this)."""
        return int(self.client.call(self.datanets.functions.datanetCount()))

    def datanet(self, datanet_id: int) -> DatanetOnChain:
        """One Datanet; ``ChainError`` (the contract's reason) if unknown."""
        d = self.client.call(self.datanets.functions.getDatanet(datanet_id))
        return DatanetOnChain(
            datanet_id, d.owner, d.name, d.metadataURI, int(d.minStake), int(d.contributionCount),
            int(d.approvedCount), int(d.versionCount), int(d.createdAt),
        )  # fmt: skip

    def contribution(self, contribution_id: int) -> ContributionOnChain:
        """One contribution; ``ChainError`` if unknown."""
        c = self.client.call(self.datanets.functions.getContribution(contribution_id))
        return ContributionOnChain(
            int(c.id), int(c.datanetId), c.contributor, bytes(c.contentHash), c.uri, int(c.size), int(c.stake),
            int(c.status), int(c.submittedAt),
        )  # fmt: skip

    def contribution_id_of(self, datanet_id: int, content_hash: bytes) -> int:
        """The id of the contribution holding ``content_hash`` in a Datanet (0 if none is pending or approved)."""
        return int(self.client.call(self.datanets.functions.contributionIdOf(datanet_id, content_hash)))

    def version_exists(self, datanet_id: int, version: int) -> bool:
        """Whether ``version`` of the Datanet is published."""
        return bool(self.client.call(self.datanets.functions.versionExists(datanet_id, version)))

    def version(self, datanet_id: int, version: int) -> VersionOnChain:
        """A published version; ``ChainError`` if it is not published."""
        v = self.client.call(self.datanets.functions.getVersion(datanet_id, version))
        return VersionOnChain(datanet_id, version, bytes(v.merkleRoot), int(v.count), v.manifestURI, int(v.publishedAt))

    def approved_hashes(self, datanet_id: int, count: int | None = None) -> list[bytes]:
        """The Datanet's approved content hashes in approval order (the first ``count``, default all), page by page."""
        hashes: list[bytes] = []
        while count is None or len(hashes) < count:
            page = self.client.call(self.datanets.functions.getApprovedHashes(datanet_id, len(hashes), APPROVED_PAGE))
            hashes += [bytes(h) for h in page]
            if len(page) < APPROVED_PAGE:
                break
        if count is not None and len(hashes) < count:
            raise ChainError(f"datanet {datanet_id} has {len(hashes)} approved contributions, fewer than {count}")
        return hashes if count is None else hashes[:count]

    def approved_contributions(self, datanet_id: int, count: int | None = None) -> list[ContributionOnChain]:
        """The approved contributions (approval order) behind ``approved_hashes``."""
        return [
            self.contribution(self.contribution_id_of(datanet_id, h)) for h in self.approved_hashes(datanet_id, count)
        ]

    # ---------------------------------------------------------------- models

    def model(self, model_id: int) -> ModelOnChain:
        """One registered model; ``ChainError`` if unknown."""
        m = self.client.call(self.models.functions.getModel(model_id))
        return ModelOnChain(
            int(m.id), m.owner, bytes(m.baseModelHash), bytes(m.adapterHash), int(m.price), int(m.split.ownerBps),
            int(m.split.contributorsBps), int(m.split.datanetOwnersBps), m.metadataURI, bool(m.active),
            int(m.registeredAt),
        )  # fmt: skip

    def model_sources(self, model_id: int) -> list[tuple[int, int]]:
        """The ``(datanet id, version)`` pairs a model was trained on."""
        return [
            (int(s.datanetId), int(s.version)) for s in self.client.call(self.models.functions.getSources(model_id))
        ]

    # -------------------------------------------------------------- requests

    def request_status(self, request_id: int) -> int:
        """``InferenceMarket.requestStatus``: 0 unknown, 1 paid, 2 served, 3 refunded."""
        return int(self.client.call(self.market.functions.requestStatus(request_id)))

    def earnings(self, owner: str) -> int:
        """A model owner's withdrawable earnings (wei of OPEN) in the InferenceMarket."""
        return int(self.client.call(self.market.functions.earnings(owner)))
