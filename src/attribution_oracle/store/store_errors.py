"""Errors raised by the content store and the catalog.

Every message is one readable line: the command line prints them as they are.
"""

from __future__ import annotations

from attribution_oracle.errors import UserError

__all__ = [
    "BlobNotFoundError",
    "CatalogError",
    "CorruptBlobError",
    "InvalidDigestError",
    "StoreError",
    "UnknownIdError",
]

_SHOWN = 80  # at most this many characters of a rejected value appear in a message


def _one_line(text: str) -> str:
    """Collapse whitespace (newlines included) so that a message stays on one line."""
    return " ".join(text.split())


class StoreError(UserError):
    """Base class of every error the store package raises."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class InvalidDigestError(StoreError, ValueError):
    """A digest string (or bytes32 value) is not a well-formed sha256 digest."""

    def __init__(self, value: object, reason: str = "expected 64 lowercase hex characters (a sha256 digest)") -> None:
        self.value = value
        if isinstance(value, str):
            shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "..."
            message = f"invalid digest {shown!r}: {reason}"
        else:
            message = f"invalid digest of type {type(value).__name__}: {reason}"
        super().__init__(message)


class BlobNotFoundError(StoreError):
    """No blob with the requested digest is in the store."""

    def __init__(self, digest: str, root: object) -> None:
        self.digest = digest
        super().__init__(f"blob {digest} is not in the content store at {root}")


class CorruptBlobError(StoreError):
    """A stored blob's bytes no longer hash to its digest."""

    def __init__(self, digest: str, actual: str) -> None:
        self.digest = digest
        self.actual = actual
        super().__init__(f"blob {digest} is corrupt: its bytes do not match the digest (they hash to {actual})")


class CatalogError(StoreError):
    """The catalog cannot do what was asked (a malformed event, an inconsistent mirror, a bad query)."""


class UnknownIdError(CatalogError, LookupError):
    """The catalog holds no record with the requested id (e.g. ``unknown datanet 7``)."""

    def __init__(self, kind: str, ident: object) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"unknown {kind} {ident}")
