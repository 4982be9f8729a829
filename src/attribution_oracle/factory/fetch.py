"""Fetch the training data of published Datanet versions and verify it against the on-chain Merkle roots.

For each requested version: read its root and count, read the first ``count`` approved content hashes in
approval order, recompute the Merkle root with ``store.merkle`` (the contracts' tree) and compare; then
read every blob from the content store, which checks its bytes against its sha256. Anything that does
not verify raises ``DataVerificationError`` before a single byte of training output is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from attribution_oracle.datanets.versions import VersionManifestError, read_version_manifest
from attribution_oracle.factory.factory_errors import DataVerificationError
from attribution_oracle.factory.version_sources import (
    ApprovedContribution,
    DatanetSource,
    VersionRecord,
    parse_datanet_spec,
)
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.digests import digest_of_uri
from attribution_oracle.store.merkle import MerkleTree
from attribution_oracle.store.store_errors import BlobNotFoundError, CorruptBlobError, InvalidDigestError

__all__ = ["Document", "TrainingData", "fetch_training_data"]


@dataclass(frozen=True)
class Document:
    """One verified contribution and its bytes."""

    contribution: ApprovedContribution
    data: bytes

    @property
    def key(self) -> str:
        """The contribution id as a string: how attribution scores name it."""
        return str(self.contribution.contribution_id)


@dataclass(frozen=True)
class TrainingData:
    """Verified versions and their documents, in training order (versions as given, approval order within)."""

    versions: list[VersionRecord]
    documents: list[Document]


def _resolve(source: DatanetSource, spec: str) -> VersionRecord:
    datanet_id, version = parse_datanet_spec(spec)
    if version is None:
        version = source.latest_version(datanet_id)
        if version == 0:
            raise DataVerificationError(f"datanet {datanet_id} has no published version to train on")
    return source.version(datanet_id, version)


def fetch_training_data(source: DatanetSource, store: BlobStore, specs: Sequence[str]) -> TrainingData:
    """Resolve ``ID[@VERSION]`` specs, verify each version's root and blobs, and return the documents.

    One version per Datanet (as ModelRegistry requires); a content hash present in several Datanets is trained
    on once (its first occurrence).
    """
    if not specs:
        raise DataVerificationError("give at least one --datanet ID[@VERSION]")
    versions: list[VersionRecord] = []
    documents: list[Document] = []
    seen: set[str] = set()
    for spec in specs:
        record = _resolve(source, spec)
        earlier = [v for v in versions if v.datanet_id == record.datanet_id]
        if earlier:
            raise DataVerificationError(
                f"datanet {record.datanet_id} is given twice (versions {earlier[0].version} and {record.version}): "
                "name one version, later versions contain the earlier ones"
            )
        approved = source.approved(record.datanet_id, record.count)
        if len(approved) != record.count:
            raise DataVerificationError(
                f"datanet {record.datanet_id}@{record.version} covers {record.count} contributions "
                f"but only {len(approved)} approved ones were found"
            )
        root = MerkleTree([bytes.fromhex(c.content_hash) for c in approved]).root.hex()
        if root != record.merkle_root:
            raise DataVerificationError(
                f"datanet {record.datanet_id}@{record.version}: the approved hashes give root 0x{root[:16]}..., "
                f"the chain has 0x{record.merkle_root[:16]}..."
            )
        _check_version_manifest(store, record, approved)
        for contribution in approved:
            try:
                data = store.get(contribution.content_hash)
            except BlobNotFoundError:
                raise DataVerificationError(
                    f"contribution {contribution.contribution_id} of datanet {record.datanet_id}@{record.version}: "
                    f"blob {contribution.content_hash[:16]}... is not in the content store at {store.root}"
                ) from None
            except CorruptBlobError as exc:
                raise DataVerificationError(
                    f"contribution {contribution.contribution_id} of datanet {record.datanet_id}@{record.version}: "
                    f"blob {contribution.content_hash[:16]}... is tampered (its bytes hash to {exc.actual[:16]}...)"
                ) from None
            if contribution.content_hash not in seen:
                seen.add(contribution.content_hash)
                documents.append(Document(contribution, data))
        versions.append(record)
    return TrainingData(versions, documents)


def _check_version_manifest(store: BlobStore, record: VersionRecord, approved: list[ApprovedContribution]) -> None:
    """The version's manifest, when the store holds it, must be the one ``datanet publish`` writes for it.

    Read through ``datanets.versions`` (the code that writes it); the on-chain root stays the authority, so a
    manifest this store does not hold is not required.
    """
    try:
        digest = digest_of_uri(record.manifest_uri)
    except InvalidDigestError:
        return
    if not store.has(digest):
        return
    where = f"datanet {record.datanet_id}@{record.version}"
    try:
        manifest = read_version_manifest(store.get(digest), record.merkle_root, record.count)
    except (VersionManifestError, CorruptBlobError) as exc:
        raise DataVerificationError(f"{where}: its version manifest does not verify ({exc})") from None
    if [h.removeprefix("0x") for h in manifest["contentHashes"]] != [c.content_hash for c in approved]:
        raise DataVerificationError(f"{where}: its version manifest lists other contributions than the chain")
