"""sha256 digests: the canonical text form (64 lowercase hex characters) and the on-chain bytes32 form.

The digest of a blob's bytes names the blob in the content store and, as a ``bytes32``, is the
``contentHash`` of a contribution on-chain. Inside the package a digest is always the canonical
text form: no ``0x`` prefix, lowercase.
"""

from __future__ import annotations

import re

from attribution_oracle.store.store_errors import InvalidDigestError

__all__ = [
    "CONTENT_URI_SCHEME",
    "bytes32_to_digest",
    "content_uri",
    "digest_of_uri",
    "digest_to_bytes32",
    "normalize_digest",
    "validate_digest",
]

CONTENT_URI_SCHEME = "sha256://"

_DIGEST = re.compile(r"[0-9a-f]{64}")


def validate_digest(digest: object) -> str:
    """Return ``digest`` if it is in canonical form (64 lowercase hex characters), else raise ``InvalidDigestError``."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise InvalidDigestError(digest)
    return digest


def normalize_digest(text: str) -> str:
    """Turn user input (``0x`` prefix, upper case, surrounding spaces allowed) into a canonical digest."""
    if not isinstance(text, str):
        raise InvalidDigestError(text)
    candidate = text.strip().lower()
    if candidate.startswith("0x"):
        candidate = candidate[2:]
    if _DIGEST.fullmatch(candidate) is None:
        raise InvalidDigestError(text)
    return candidate


def digest_to_bytes32(digest: str) -> bytes:
    """Return the 32 bytes of a canonical digest, ready to pass as a ``bytes32`` argument."""
    return bytes.fromhex(validate_digest(digest))


def bytes32_to_digest(value: bytes) -> str:
    """Return the canonical digest of a ``bytes32`` value as decoded from the chain (``bytes`` or a subclass)."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidDigestError(value, "expected 32 bytes")
    raw = bytes(value)
    if len(raw) != 32:
        raise InvalidDigestError(value, f"expected 32 bytes, got {len(raw)}")
    return raw.hex()


def content_uri(digest: str) -> str:
    """The URI of a blob in a content store, as recorded on-chain: ``sha256://<digest>``."""
    return CONTENT_URI_SCHEME + validate_digest(digest)


def digest_of_uri(uri: str) -> str:
    """The digest named by a ``sha256://<digest>`` URI; ``InvalidDigestError`` for any other URI."""
    if not isinstance(uri, str) or not uri.startswith(CONTENT_URI_SCHEME):
        raise InvalidDigestError(uri, f"not a {CONTENT_URI_SCHEME}<digest> content-store URI")
    return normalize_digest(uri.removeprefix(CONTENT_URI_SCHEME))
