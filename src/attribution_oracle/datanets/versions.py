"""Datanet version manifests: the one format the CLI writes at ``publish`` and the factory checks before training.

A manifest (``attribution-oracle/datanet-version@1``) names the chain, the registry and the Datanet, and lists
the content hashes of the version in approval order with their Merkle root (the contracts' tree). It is stored
as a blob and its ``sha256://`` URI is recorded on-chain with the version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from attribution_oracle.errors import UserError
from attribution_oracle.store.merkle import MerkleTree

__all__ = [
    "VERSION_MANIFEST_FORMAT",
    "VersionManifestError",
    "build_version_manifest",
    "encode_version_manifest",
    "read_version_manifest",
]

VERSION_MANIFEST_FORMAT = "attribution-oracle/datanet-version@1"
LEAF_RULE = "keccak256(keccak256(contentHash)), sorted pairs"


class VersionManifestError(UserError):
    """A version manifest that is malformed or does not match its own hashes or the chain."""


def build_version_manifest(chain_id: int, registry: str, datanet_id: int, hashes: Sequence[bytes]) -> dict:
    """The manifest of a version made of ``hashes`` (approval order)."""
    tree = MerkleTree(list(hashes))
    return {
        "format": VERSION_MANIFEST_FORMAT,
        "chainId": chain_id,
        "registry": registry,
        "datanetId": datanet_id,
        "merkleRoot": tree.root.hex(),
        "count": len(hashes),
        "leafRule": LEAF_RULE,
        "contentHashes": [h.hex() for h in hashes],
    }


def encode_version_manifest(manifest: dict) -> bytes:
    """The bytes stored in the content store (stable: sorted keys, two-space indent)."""
    return json.dumps(manifest, indent=2, sort_keys=True).encode()


def read_version_manifest(data: bytes, merkle_root: str | None = None, count: int | None = None) -> dict:
    """Parse a stored manifest and check it: its format, that its hashes give its root and count, and (when
    given) that root and count match the chain's (``merkle_root`` as 64 hex characters)."""
    try:
        manifest = json.loads(data)
        hashes = [bytes.fromhex(h.removeprefix("0x")) for h in manifest["contentHashes"]]
        fmt, root, n = manifest["format"], str(manifest["merkleRoot"]).removeprefix("0x"), int(manifest["count"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VersionManifestError(f"not a datanet version manifest ({exc})") from None
    if fmt != VERSION_MANIFEST_FORMAT:
        raise VersionManifestError(f"unknown version manifest format {fmt!r} (want {VERSION_MANIFEST_FORMAT})")
    if len(hashes) != n or (hashes and MerkleTree(hashes).root.hex() != root):
        raise VersionManifestError("the version manifest's hashes do not give its own root and count")
    if merkle_root is not None and root != merkle_root.removeprefix("0x"):
        raise VersionManifestError(f"the version manifest's root 0x{root[:16]}... is not the chain's")
    if count is not None and n != count:
        raise VersionManifestError(f"the version manifest lists {n} contributions, the chain {count}")
    return manifest
