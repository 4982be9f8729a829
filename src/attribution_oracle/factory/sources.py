"""Where the ModelFactory reads Datanet versions from: the chain itself, or the catalog that mirrors it.

Both sources answer the same three questions: the latest published version of a Datanet, a version's
Merkle root and count, and the first ``count`` approved contributions in approval order (id, contributor,
content hash). The CLI reads the chain (``ChainSource``); the catalog (``CatalogSource``) serves offline
tools and tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from attribution_oracle.store.catalog import Catalog
from attribution_oracle.store.digests import bytes32_to_digest, digest_to_bytes32
from attribution_oracle.store.errors import UnknownIdError

from .errors import DataVerificationError, FactoryError

__all__ = [
    "ApprovedContribution",
    "CatalogSource",
    "ChainSource",
    "DatanetSource",
    "VersionRecord",
    "parse_datanet_spec",
]

_SPEC = re.compile(r"(\d+)(?:@(\d+))?")
_PAGE = 100


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
    """Parse ``ID`` or ``ID@VERSION`` into ``(id, version or None)``."""
    match = _SPEC.fullmatch(spec.strip())
    if not match:
        raise FactoryError(f"--datanet {spec!r}: use ID or ID@VERSION")
    return int(match.group(1)), int(match.group(2)) if match.group(2) else None


class ChainSource:
    """Reads DatanetRegistry directly (the authority)."""

    def __init__(self, client, deployment) -> None:
        """Bind to a ``ChainClient`` and a ``Deployment``."""
        self.client = client
        self.registry = client.contract(deployment, "DatanetRegistry")

    def _datanet(self, datanet_id: int):
        if datanet_id <= 0 or datanet_id > self.client.call(self.registry.functions.datanetCount()):
            raise DataVerificationError(f"unknown datanet {datanet_id}")
        return self.client.call(self.registry.functions.getDatanet(datanet_id))

    def latest_version(self, datanet_id: int) -> int:  # noqa: D102
        return int(self._datanet(datanet_id)[6])

    def version(self, datanet_id: int, version: int) -> VersionRecord:  # noqa: D102
        self._datanet(datanet_id)
        if not self.client.call(self.registry.functions.versionExists(datanet_id, version)):
            raise DataVerificationError(f"datanet {datanet_id} has no published version {version}")
        root, count, uri, _ = self.client.call(self.registry.functions.getVersion(datanet_id, version))
        return VersionRecord(datanet_id, version, bytes32_to_digest(root), int(count), uri)

    def approved(self, datanet_id: int, count: int) -> list[ApprovedContribution]:  # noqa: D102
        hashes: list[bytes] = []
        while len(hashes) < count:
            page = self.client.call(self.registry.functions.getApprovedHashes(datanet_id, len(hashes), _PAGE))
            if not page:
                break
            hashes += [bytes(h) for h in page]
        out = []
        for content_hash in hashes[:count]:
            cid = int(self.client.call(self.registry.functions.contributionIdOf(datanet_id, content_hash)))
            contributor = self.client.call(self.registry.functions.getContribution(cid))[2]
            out.append(ApprovedContribution(datanet_id, cid, contributor, bytes32_to_digest(content_hash)))
        return out


class CatalogSource:
    """Reads the SQLite catalog (a mirror of the chain's events)."""

    def __init__(self, catalog: Catalog) -> None:
        """Bind to an open catalog."""
        self.catalog = catalog

    def latest_version(self, datanet_id: int) -> int:  # noqa: D102
        try:
            versions = self.catalog.list_versions(datanet_id)
        except UnknownIdError:
            raise DataVerificationError(f"unknown datanet {datanet_id}") from None
        return versions[-1].version if versions else 0

    def version(self, datanet_id: int, version: int) -> VersionRecord:  # noqa: D102
        try:
            v = self.catalog.get_version(datanet_id, version)
        except UnknownIdError:
            raise DataVerificationError(f"datanet {datanet_id} has no published version {version}") from None
        return VersionRecord(datanet_id, version, v.merkle_root.removeprefix("0x"), v.count, v.manifest_uri)

    def approved(self, datanet_id: int, count: int) -> list[ApprovedContribution]:  # noqa: D102
        hashes = self.catalog.approved_hashes(datanet_id)[:count]
        by_hash = {c.content_hash: c for c in self.catalog.list_contributions(datanet_id, "approved")}
        return [
            ApprovedContribution(datanet_id, by_hash[h].id, by_hash[h].contributor, digest_to_bytes32(h).hex())
            for h in hashes
        ]
