"""Content-addressed blobs, the SQLite catalog of chain state, and Merkle trees matching the contracts.

``merkle`` is imported on its own (``attribution_oracle.store.merkle``) since it needs eth-utils.
"""

from .blobs import BlobStore
from .catalog import Catalog
from .digests import bytes32_to_digest, digest_to_bytes32, normalize_digest, validate_digest
from .errors import (
    BlobNotFoundError,
    CatalogError,
    CorruptBlobError,
    InvalidDigestError,
    StoreError,
    UnknownIdError,
)
from .records import CONTRIBUTION_STATUSES, Contribution, Datanet, LocalFile, Model, ModelSource, Version

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
