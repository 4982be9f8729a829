"""The content-addressed blob store: round trips, atomic writes, verification on read, digest handling."""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution_oracle.store import blobs as blobs_module
from attribution_oracle.store.blobs import CHUNK_SIZE, BlobStore, bytes32_to_digest, digest_to_bytes32
from attribution_oracle.store.digests import normalize_digest
from attribution_oracle.store.store_errors import BlobNotFoundError, CorruptBlobError, InvalidDigestError, StoreError


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _flip_byte(path: Path, offset: int = 0) -> None:
    os.chmod(path, 0o644)  # blobs are stored read-only
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


# ------------------------------------------------------------------- round trip


def test_put_bytes_round_trip(store: BlobStore) -> None:
    data = b"the quick brown fox\n"
    digest = store.put_bytes(data)

    assert digest == hashlib.sha256(data).hexdigest()
    assert store.has(digest)
    assert store.get(digest) == data
    assert store.size(digest) == len(data)
    assert store.path_of(digest) == store.root / digest[:2] / digest[2:4] / digest
    assert store.path_of(digest).read_bytes() == data
    assert list(store.digests()) == [digest]
    store.verify(digest)


def test_blobs_are_read_only_on_disk(store: BlobStore) -> None:
    digest = store.put_bytes(b"immutable")
    assert stat.S_IMODE(store.path_of(digest).stat().st_mode) & 0o222 == 0


def test_put_is_idempotent(store: BlobStore) -> None:
    first = store.put_bytes(b"same bytes")
    second = store.put_bytes(b"same bytes")
    assert first == second
    assert _files_under(store.root) == [store.path_of(first)]


def test_empty_blob(store: BlobStore) -> None:
    digest = store.put_bytes(b"")
    assert digest == hashlib.sha256(b"").hexdigest()
    assert store.get(digest) == b""
    assert store.size(digest) == 0


def test_digests_lists_every_blob_sorted_and_skips_temp_files(store: BlobStore) -> None:
    digests = {store.put_bytes(bytes([i]) * i) for i in range(20)}
    stray = store.path_of(next(iter(digests))).parent / ".tmp-leftover"
    stray.write_bytes(b"junk")
    assert list(store.digests()) == sorted(digests)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_round_trip_property(store: BlobStore, data: bytes) -> None:
    digest = store.put_bytes(data)
    assert store.get(digest) == data
    assert digest_to_bytes32(digest) == hashlib.sha256(data).digest()


def test_put_file_and_put_bytes_agree(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "note.txt"
    source.write_bytes(b"hello datanet")
    assert store.put_file(source) == store.put_bytes(b"hello datanet")
    assert len(_files_under(store.root)) == 1


# ------------------------------------------------------------------- streaming


def test_put_file_streams_a_multi_megabyte_file(store: BlobStore, tmp_path: Path) -> None:
    size = 16 * CHUNK_SIZE + 12_345  # not a multiple of the chunk size
    source = tmp_path / "big.bin"
    payload = os.urandom(size)
    source.write_bytes(payload)
    expected = hashlib.sha256(payload).hexdigest()
    del payload

    tracemalloc.start()
    try:
        digest = store.put_file(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert digest == expected
    assert peak < 3 * CHUNK_SIZE, f"put_file held {peak} bytes at once for a {size}-byte file"
    assert store.size(digest) == size
    store.verify(digest)
    copy = store.copy_to(digest, tmp_path / "out" / "copy.bin")
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == expected
    assert store.put_file(source) == digest  # again: no-op
    assert _files_under(store.root) == [store.path_of(digest)]


# --------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("how", ["put_bytes", "put_file"])
def test_crash_before_rename_leaves_no_blob_and_no_temp_file(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    data = b"contribution bytes" * 1000
    digest = hashlib.sha256(data).hexdigest()
    source = tmp_path / "source.bin"
    source.write_bytes(data)

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(blobs_module.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.put_bytes(data) if how == "put_bytes" else store.put_file(source)

    assert not store.has(digest)
    assert not store.path_of(digest).exists()
    assert _files_under(store.root) == []
    assert list(store.digests()) == []
    with pytest.raises(BlobNotFoundError):
        store.get(digest)

    monkeypatch.undo()
    assert (store.put_bytes(data) if how == "put_bytes" else store.put_file(source)) == digest
    assert store.get(digest) == data
    assert _files_under(store.root) == [store.path_of(digest)]


def test_crash_during_fsync_leaves_nothing(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(fd: int) -> None:
        raise OSError("simulated power cut")

    monkeypatch.setattr(blobs_module.os, "fsync", crash)
    with pytest.raises(OSError, match="simulated power cut"):
        store.put_bytes(b"never lands")
    assert _files_under(store.root) == []


# ---------------------------------------------------------------- corruption


def test_corrupted_blob_is_detected_on_every_read(store: BlobStore, tmp_path: Path) -> None:
    data = b"approved training example" * 100
    digest = store.put_bytes(data)
    _flip_byte(store.path_of(digest), offset=7)

    with pytest.raises(CorruptBlobError) as err:
        store.get(digest)
    message = str(err.value)
    assert digest in message
    assert "do not match" in message
    assert "\n" not in message
    assert isinstance(err.value, StoreError)

    with pytest.raises(CorruptBlobError):
        store.verify(digest)

    dest = tmp_path / "restore" / "example.txt"
    with pytest.raises(CorruptBlobError):
        store.copy_to(digest, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temp file left beside dest

    assert store.has(digest)  # has() does not read; the blob is still there, just bad
    assert store.put_bytes(data) == digest  # putting the true bytes again repairs it
    assert store.get(digest) == data


def test_missing_blob(store: BlobStore, tmp_path: Path) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert not store.has(digest)
    for call in (store.get, store.size, store.verify, lambda d: store.copy_to(d, tmp_path / "x")):
        with pytest.raises(BlobNotFoundError, match=digest):
            call(digest)
    assert not (tmp_path / "x").exists()


# -------------------------------------------------------------------- digests

MALFORMED = [
    "",
    "abc",
    "A" * 64,
    "0x" + "a" * 64,
    "a" * 63,
    "a" * 65,
    "g" * 64,
    "a" * 63 + "\n",
    " " + "a" * 63,
    "../" + "a" * 61,
]


@pytest.mark.parametrize("digest", MALFORMED)
def test_malformed_digests_are_rejected(store: BlobStore, tmp_path: Path, digest: str) -> None:
    calls = [
        store.path_of,
        store.has,
        store.get,
        store.size,
        store.verify,
        lambda d: store.copy_to(d, tmp_path / "out"),
        digest_to_bytes32,
    ]
    for call in calls:
        with pytest.raises(InvalidDigestError) as err:
            call(digest)
        assert "\n" not in str(err.value)
        assert "invalid digest" in str(err.value)


@pytest.mark.parametrize("value", [None, 42, b"\x00" * 32])
def test_non_string_digests_are_rejected(store: BlobStore, value: object) -> None:
    with pytest.raises(InvalidDigestError, match="invalid digest of type"):
        store.get(value)  # type: ignore[arg-type]


def test_long_malformed_digest_message_stays_short_and_on_one_line() -> None:
    with pytest.raises(InvalidDigestError) as err:
        digest_to_bytes32("x\n" * 500)
    assert "\n" not in str(err.value)
    assert len(str(err.value)) < 200


@given(raw=st.binary(min_size=32, max_size=32))
def test_bytes32_round_trip(raw: bytes) -> None:
    digest = bytes32_to_digest(raw)
    assert len(digest) == 64 and digest == digest.lower()
    assert digest_to_bytes32(digest) == raw


@pytest.mark.parametrize("raw", [b"", b"\x01" * 31, b"\x01" * 33])
def test_bytes32_of_the_wrong_length_is_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidDigestError, match=f"expected 32 bytes, got {len(raw)}"):
        bytes32_to_digest(raw)


def test_normalize_digest_accepts_what_users_paste() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert normalize_digest("  0x" + digest.upper() + "\n") == digest
    with pytest.raises(InvalidDigestError):
        normalize_digest("0x" + digest[:-1])
