"""Where the ModelFactory reads Datanet versions from: the chain itself, or the catalog that mirrors it.

Both sources answer the same three questions: the latest published version of a Datanet, a version's
Merkle root and count, and the first ``count`` approved contributions in approval order (id, contributor,
content hash). The CLI reads the chain (``ChainSource``); the catalog (``CatalogSource``) serves offline
tools and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from attribution_oracle.datanets.specs import DatanetSpecError, parse_spec
from attribution_oracle.factory.factory_errors import DataVerificationError, FactoryError
from attribution_oracle.store.catalog import Catalog
from attribution_oracle.store.digests import bytes32_to_digest, digest_to_bytes32
from attribution_oracle.store.store_errors import UnknownIdError

__all__ = [
    "ApprovedContribution",
    "CatalogSource",
    "ChainSource",
    "DatanetSource",
    "VersionRecord",
    "parse_datanet_spec",
]


@dataclass(frozen=True)
class VersionRecord:
    """A published Datanet version as the chain records it."""

    datanet_id: int
    version: int
    merkle_root: str  # 64 hex characters
    count: int
    manifest_uri: str


@dataclass(frozen=True)
class ApprovedContribution:
    """One approved contribution, in approval order."""

    datanet_id: int
    contribution_id: int
    contributor: str
    content_hash: str  # 64 hex characters


class DatanetSource(Protocol):
    """What the factory needs to know about Datanets."""

    def latest_version(self, datanet_id: int) -> int:
        """The newest published version number (0 when none is published)."""

    def version(self, datanet_id: int, version: int) -> VersionRecord:
        """A published version; ``DataVerificationError`` if it is not published."""

    def approved(self, datanet_id: int, count: int) -> list[ApprovedContribution]:
        """The first ``count`` approved contributions, in approval order."""


def parse_datanet_spec(spec: str) -> tuple[int, int | None]:
    """``datanets.specs.parse_spec`` raising ``FactoryError`` (the factory's error family)."""
    try:
        return parse_spec(spec)
    except DatanetSpecError as exc:
        raise FactoryError(str(exc)) from None


class ChainSource:
    """Reads DatanetRegistry directly (the authority)."""

    def __init__(self, client, deployment) -> None:
        """Bind to a ``ChainClient`` and a ``Deployment``."""
        from attribution_oracle.chain.reads import ChainReader

        self.client = client
        self.reader = ChainReader(client, deployment)

    def _datanet(self, datanet_id: int):
        if datanet_id <= 0 or datanet_id > self.reader.datanet_count():
            raise DataVerificationError(f"unknown datanet {datanet_id}")
        return self.reader.datanet(datanet_id)

    def latest_version(self, datanet_id: int) -> int:
        return self._datanet(datanet_id).version_count

    def version(self, datanet_id: int, version: int) -> VersionRecord:
        self._datanet(datanet_id)
        if not self.reader.version_exists(datanet_id, version):
            raise DataVerificationError(f"datanet {datanet_id} has no published version {version}")
        v = self.reader.version(datanet_id, version)
        return VersionRecord(datanet_id, version, bytes32_to_digest(v.merkle_root), v.count, v.manifest_uri)

    def approved(self, datanet_id: int, count: int) -> list[ApprovedContribution]:
        hashes = self.reader.approved_hashes(datanet_id)[:count]
        out = []
        for content_hash in hashes:
            cid = self.reader.contribution_id_of(datanet_id, content_hash)
            contributor = self.reader.contribution(cid).contributor
            out.append(ApprovedContribution(datanet_id, cid, contributor, bytes32_to_digest(content_hash)))
        return out


class CatalogSource:
    """Reads the SQLite catalog (a mirror of the chain's events)."""

    def __init__(self, catalog: Catalog) -> None:
        """Bind to an open catalog."""
        self.catalog = catalog

    def latest_version(self, datanet_id: int) -> int:
        try:
            versions = self.catalog.list_versions(datanet_id)
        except UnknownIdError:
            raise DataVerificationError(f"unknown datanet {datanet_id}") from None
        return versions[-1].version if versions else 0

    def version(self, datanet_id: int, version: int) -> VersionRecord:
        try:
            v = self.catalog.get_version(datanet_id, version)
        except UnknownIdError:
            raise DataVerificationError(f"datanet {datanet_id} has no published version {version}") from None
        return VersionRecord(datanet_id, version, v.merkle_root.removeprefix("0x"), v.count, v.manifest_uri)

    def approved(self, datanet_id: int, count: int) -> list[ApprovedContribution]:
        hashes = self.catalog.approved_hashes(datanet_id)[:count]
        by_hash = {c.content_hash: c for c in self.catalog.list_contributions(datanet_id, "approved")}
        return [
            ApprovedContribution(datanet_id, by_hash[h].id, by_hash[h].contributor, digest_to_bytes32(h).hex())
            for h in hashes
        ]
