"""Content-addressed blobs, the SQLite catalog of chain state, and Merkle trees matching the contracts.

``merkle`` is imported on its own (``attribution_oracle.store.merkle``) since it needs eth-utils.
"""

from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.catalog import Catalog
from attribution_oracle.store.catalog_records import (
    CONTRIBUTION_STATUSES,
    Contribution,
    Datanet,
    LocalFile,
    Model,
    ModelSource,
    Version,
)
from attribution_oracle.store.digests import bytes32_to_digest, digest_to_bytes32, normalize_digest, validate_digest
from attribution_oracle.store.store_errors import (
    BlobNotFoundError,
    CatalogError,
    CorruptBlobError,
    InvalidDigestError,
    StoreError,
    UnknownIdError,
)

__all__ = [
    "CONTRIBUTION_STATUSES",
    "BlobNotFoundError",
    "BlobStore",
    "Catalog",
    "CatalogError",
    "Contribution",
    "CorruptBlobError",
    "Datanet",
    "InvalidDigestError",
    "LocalFile",
    "Model",
    "ModelSource",
    "StoreError",
    "UnknownIdError",
    "Version",
    "bytes32_to_digest",
    "digest_to_bytes32",
    "normalize_digest",
    "validate_digest",
]
