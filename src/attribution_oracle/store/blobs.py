"""A content-addressed blob store: a directory of files named by the sha256 of their bytes.

Layout: ``root/ab/cd/abcd...`` (fan-out by the first four hex characters of the digest). A blob only
ever appears under its digest complete and flushed to disk: it is written to a temporary file on the
same file system, fsynced, then renamed into place with ``os.replace``. Blobs are made read-only, and
every read through ``get``, ``verify`` or ``copy_to`` checks the bytes against the digest.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from attribution_oracle.store.digests import bytes32_to_digest, digest_to_bytes32, validate_digest
from attribution_oracle.store.store_errors import BlobNotFoundError, CorruptBlobError

__all__ = ["CHUNK_SIZE", "BlobStore", "bytes32_to_digest", "digest_to_bytes32"]

#: Bytes read or hashed at a time when streaming a file.
CHUNK_SIZE = 1 << 20
_TMP_PREFIX = ".tmp-"
_STAGING = "tmp"  # root/tmp holds files being streamed in before their digest is known
_BLOB_MODE = 0o444
_COPY_MODE = 0o644
_HEX = frozenset("0123456789abcdef")


class BlobStore:
    """Blobs on disk under ``root``, each named by the sha256 hex digest of its bytes."""

    def __init__(self, root: Path) -> None:
        """Open (creating if needed) the store rooted at ``root``."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    # ------------------------------------------------------------------ names

    def path_of(self, digest: str) -> Path:
        """Return where the blob ``digest`` lives (or would live); raises ``InvalidDigestError`` if malformed."""
        digest = validate_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def has(self, digest: str) -> bool:
        """Tell whether a blob is stored under ``digest`` (without reading it; see ``verify``)."""
        return self.path_of(digest).is_file()

    def size(self, digest: str) -> int:
        """Return the size in bytes of a stored blob."""
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(digest, self.root) from None

    def digests(self) -> Iterator[str]:
        """Yield the digest of every stored blob, in sorted order (temporary files are skipped)."""
        for first in _sorted_dirs(self.root):
            for second in _sorted_dirs(first):
                prefix = first.name + second.name
                for entry in sorted(second.iterdir()):
                    name = entry.name
                    if len(name) == 64 and set(name) <= _HEX and name.startswith(prefix) and entry.is_file():
                        yield name

    # ----------------------------------------------------------------- writes

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` atomically and return its digest; storing bytes already present is a no-op."""
        view = memoryview(data)
        digest = hashlib.sha256(view).hexdigest()
        target = self.path_of(digest)
        if _intact(target, digest):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(view)
                out.flush()
                os.fsync(out.fileno())
            _publish(tmp, target)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return digest

    def put_file(self, path: Path) -> str:
        """Stream the file at ``path`` into the store atomically and return its digest.

        The file is read once, in ``CHUNK_SIZE`` chunks, hashing and copying as it goes, so the stored
        bytes are exactly the bytes that were hashed and memory use does not grow with the file.
        """
        staging = self.root / _STAGING
        staging.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=staging)
        tmp = Path(tmp_name)
        try:
            hasher = hashlib.sha256()
            buffer = bytearray(CHUNK_SIZE)
            view = memoryview(buffer)
            with os.fdopen(fd, "wb") as out:
                with open(path, "rb") as src:
                    while count := src.readinto(buffer):
                        hasher.update(view[:count])
                        out.write(view[:count])
                digest = hasher.hexdigest()
                target = self.path_of(digest)
                if _intact(target, digest):
                    _unlink_quietly(tmp)
                    return digest
                out.flush()
                os.fsync(out.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            _publish(tmp, target)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return digest

    # ------------------------------------------------------------------ reads

    def get(self, digest: str) -> bytes:
        """Return the bytes of blob ``digest``, checked against the digest (``CorruptBlobError`` if they differ)."""
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(digest, self.root) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise CorruptBlobError(digest, actual)
        return data

    def verify(self, digest: str) -> None:
        """Stream blob ``digest`` through sha256 and raise ``CorruptBlobError`` unless it matches."""
        path = self.path_of(digest)
        try:
            actual = _hash_file(path)
        except FileNotFoundError:
            raise BlobNotFoundError(digest, self.root) from None
        if actual != digest:
            raise CorruptBlobError(digest, actual)

    def copy_to(self, digest: str, dest: Path) -> Path:
        """Copy blob ``digest`` to ``dest``, streaming and verifying it; ``dest`` only appears if the bytes match.

        ``dest`` is replaced atomically if it exists. Returns ``dest``.
        """
        source = self.path_of(digest)
        dest = Path(dest)
        try:
            src = open(source, "rb")  # noqa: SIM115 - closed below; must not create dest when missing
        except FileNotFoundError:
            raise BlobNotFoundError(digest, self.root) from None
        with src:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=dest.parent)
            tmp = Path(tmp_name)
            try:
                hasher = hashlib.sha256()
                buffer = bytearray(CHUNK_SIZE)
                view = memoryview(buffer)
                with os.fdopen(fd, "wb") as out:
                    while count := src.readinto(buffer):
                        hasher.update(view[:count])
                        out.write(view[:count])
                    actual = hasher.hexdigest()
                    if actual != digest:
                        raise CorruptBlobError(digest, actual)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, _COPY_MODE)
                os.replace(tmp, dest)
            except BaseException:
                _unlink_quietly(tmp)
                raise
        _fsync_dir(dest.parent)
        return dest


# ------------------------------------------------------------------- helpers


def _sorted_dirs(parent: Path) -> list[Path]:
    """The fan-out subdirectories of ``parent``: two lowercase hex characters each."""
    return sorted(p for p in parent.iterdir() if len(p.name) == 2 and set(p.name) <= _HEX and p.is_dir())


def _hash_file(path: Path) -> str:
    """Return the sha256 hex digest of a file, read in chunks."""
    hasher = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb") as src:
        while count := src.readinto(buffer):
            hasher.update(view[:count])
    return hasher.hexdigest()


def _intact(path: Path, digest: str) -> bool:
    """Tell whether a blob is present at ``path`` and its bytes hash to ``digest``."""
    try:
        return _hash_file(path) == digest
    except (FileNotFoundError, IsADirectoryError):
        return False


def _publish(tmp: Path, target: Path) -> None:
    """Make a fully written, fsynced temporary file the blob at ``target`` in one atomic rename."""
    os.chmod(tmp, _BLOB_MODE)
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry to disk so a rename survives a power cut (best effort: not every OS allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    """Remove a temporary file if it is still there."""
    path.unlink(missing_ok=True)
