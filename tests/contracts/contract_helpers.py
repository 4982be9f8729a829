"""Constants and helpers shared by the contract tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import hashlib

ONE = 10**18
CAP = 1_000_000_000 * ONE
CREATION_FEE = 10 * ONE
PROTOCOL_FEE_BPS = 500
MAX_UINT256 = 2**256 - 1
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
EMPTY_BYTES32 = b"\x00" * 32

# Contribution statuses (DatanetRegistry constants).
STATUS_NONE = 0
STATUS_PENDING = 1
STATUS_APPROVED = 2
STATUS_REJECTED = 3
STATUS_SLASHED = 4
STATUS_WITHDRAWN = 5


def content_hash(label: object) -> bytes:
    """A deterministic sha256 content hash for test data."""
    return hashlib.sha256(f"contribution:{label}".encode()).digest()
