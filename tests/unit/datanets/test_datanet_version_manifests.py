"""Version manifests: the format `datanet publish` writes is the one the factory reads and checks before training."""

from __future__ import annotations

import json

import pytest

from attribution_oracle.datanets.specs import DatanetSpecError, parse_spec
from attribution_oracle.datanets.versions import (
    VersionManifestError,
    build_version_manifest,
    encode_version_manifest,
    read_version_manifest,
)
from attribution_oracle.factory.factory_errors import DataVerificationError
from attribution_oracle.factory.fetch import fetch_training_data
from attribution_oracle.factory.version_sources import ApprovedContribution, VersionRecord
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.digests import content_uri, digest_of_uri
from attribution_oracle.store.merkle import MerkleTree
from attribution_oracle.store.store_errors import InvalidDigestError

TEXTS = [b"Bees fan their wings.", b"Smoke calms the guards.", b"Queens lay in spring."]


class StoredVersionSource:
    """A ``DatanetSource`` over one published version whose manifest and blobs live in a real ``BlobStore``."""

    def __init__(self, store: BlobStore, manifest_bytes: bytes, digests: list[str]) -> None:
        self.digests = digests
        root = MerkleTree([bytes.fromhex(d) for d in digests]).root.hex()
        self.record = VersionRecord(1, 1, root, len(digests), content_uri(store.put_bytes(manifest_bytes)))

    def latest_version(self, datanet_id: int) -> int:
        return 1

    def version(self, datanet_id: int, version: int) -> VersionRecord:
        return self.record

    def approved(self, datanet_id: int, count: int) -> list[ApprovedContribution]:
        return [ApprovedContribution(1, i + 1, "0x" + "11" * 20, d) for i, d in enumerate(self.digests[:count])]


def _world(tmp_path, tamper=None):
    store = BlobStore(tmp_path / "blobs")
    digests = [store.put_bytes(t) for t in TEXTS]
    manifest = build_version_manifest(31337, "0x" + "22" * 20, 1, [bytes.fromhex(d) for d in digests])
    if tamper is not None:
        tamper(manifest)
    return store, StoredVersionSource(store, encode_version_manifest(manifest), digests)


def test_a_written_manifest_reads_back_and_matches_the_root():
    hashes = [bytes([i]) * 32 for i in range(5)]
    manifest = build_version_manifest(1, "0xabc", 7, hashes)
    root = MerkleTree(hashes).root.hex()
    assert read_version_manifest(encode_version_manifest(manifest), root, 5) == manifest
    with pytest.raises(VersionManifestError, match="not the chain's"):
        read_version_manifest(encode_version_manifest(manifest), "00" * 32, 5)
    with pytest.raises(VersionManifestError, match="the chain 6"):
        read_version_manifest(encode_version_manifest(manifest), root, 6)
    with pytest.raises(VersionManifestError, match="not a datanet version manifest"):
        read_version_manifest(b"[1, 2")
    with pytest.raises(VersionManifestError, match="unknown version manifest format"):
        read_version_manifest(json.dumps({**manifest, "format": "other@1"}).encode())


def test_the_factory_trains_on_a_version_whose_manifest_verifies(tmp_path):
    store, source = _world(tmp_path)
    data = fetch_training_data(source, store, ["1"])
    assert [d.data for d in data.documents] == TEXTS


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m["contentHashes"].reverse(),  # same set, other order: another root
        lambda m: m.update(count=2),
        lambda m: m.update(merkleRoot="00" * 32),
    ],
    ids=["reordered", "count", "root"],
)
def test_the_factory_refuses_a_tampered_version_manifest(tmp_path, tamper):
    store, source = _world(tmp_path, tamper)
    with pytest.raises(DataVerificationError, match="version manifest"):
        fetch_training_data(source, store, ["1"])


def test_content_uris_and_specs_have_one_parser_each():
    digest = "ab" * 32
    assert digest_of_uri(content_uri(digest)) == digest
    assert digest_of_uri("sha256://0x" + "AB" * 32) == digest
    for bad in ("ipfs://x", "sha256://zz", ""):
        with pytest.raises(InvalidDigestError):
            digest_of_uri(bad)
    assert parse_spec("3") == (3, None) and parse_spec(" 3@2 ") == (3, 2)
    for bad in ("0", "1@0", f"1@{2**256}", str(2**256), "-1", "1@", "x"):
        with pytest.raises(DatanetSpecError):
            parse_spec(bad)
