"""Merkle trees and proofs that match the contracts (snekmate / OpenZeppelin convention).

Leaves are double-hashed: ``leaf = keccak256(keccak256(abi.encode(value)))``; for a single ``bytes32``
value ``abi.encode`` is the value itself. Inner nodes hash the sorted pair: ``keccak256(min(a, b) || max(a, b))``.
An odd node at the end of a level is carried up unchanged. Leaves are kept in the given order (approval
order for Datanet versions). Because pairs are hashed sorted, the root does not pin the order completely
(swapping two sibling leaves keeps it), so code that needs the order reads it from the chain
(``getApprovedHashes``) or from the version manifest, and uses the root to check membership.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import keccak

__all__ = ["MerkleTree", "hash_pair", "leaf_hash", "verify"]


def leaf_hash(value: bytes) -> bytes:
    """Return the double-hashed leaf of an ABI-encoded value (a bytes32 is its own encoding)."""
    if len(value) % 32 != 0 or not value:
        raise ValueError("a leaf value must be ABI-encoded: a non-empty multiple of 32 bytes")
    return keccak(keccak(value))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """Hash two nodes in sorted order, as snekmate's ``_hash_pair`` does."""
    return keccak(a + b) if a < b else keccak(b + a)


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """Check a proof the way the contracts do: fold the siblings into the leaf and compare to the root."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root


class MerkleTree:
    """A Merkle tree over ABI-encoded values (e.g. bytes32 content hashes), kept in the given order."""

    def __init__(self, values: Sequence[bytes]) -> None:
        if not values:
            raise ValueError("a Merkle tree needs at least one leaf")
        self.values = [bytes(v) for v in values]
        self.leaves = [leaf_hash(v) for v in self.values]
        self._index = {}
        for i, leaf in enumerate(self.leaves):
            self._index.setdefault(leaf, i)
        self.levels: list[list[bytes]] = [self.leaves]
        while len(self.levels[-1]) > 1:
            level = self.levels[-1]
            parent = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                parent.append(level[-1])
            self.levels.append(parent)

    @property
    def root(self) -> bytes:
        """The 32-byte root."""
        return self.levels[-1][0]

    def proof(self, index: int) -> list[bytes]:
        """Return the sibling hashes from leaf ``index`` up to the root."""
        if not 0 <= index < len(self.leaves):
            raise IndexError(f"leaf index {index} out of range (tree has {len(self.leaves)} leaves)")
        proof = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof

    def proof_for(self, value: bytes) -> list[bytes]:
        """Return the proof of a value (its first occurrence); ``KeyError`` if it is not a leaf."""
        leaf = leaf_hash(value)
        if leaf not in self._index:
            raise KeyError("value is not a leaf of this tree")
        return self.proof(self._index[leaf])
