"""The two trees of an epoch report, built exactly as the contracts hash them.

- Rewards tree: one leaf per account, ``keccak256(keccak256(abi.encode(address account, uint256 cumulative)))``,
  leaves sorted by account address (lower-case hex) so every node builds the same tree.
- Attribution tree: one leaf per served inference,
  ``keccak256(keccak256(abi.encode(uint256 requestId, uint256 modelId, bytes32 sharesHash)))`` in request order,
  where ``sharesHash`` is the keccak256 of the canonical JSON of that inference's per-account shares. An inference
  served with retrieval (``serve --rag``) commits its retrieved contribution ids too:
  ``keccak256(keccak256(abi.encode(uint256 requestId, uint256 modelId, bytes32 sharesHash, bytes32 retrievedHash)))``
  with ``retrievedHash = keccak256(canonical JSON list of the ids, in rank order)`` (``retrieved_hash``). The two
  encodings differ in length (96 and 128 bytes), so no leaf of one form equals a leaf of the other, and reports
  without retrieval keep their roots. The oracles sign the root, so a node that drops or changes a retrieved id
  signs a different root and cannot join the honest quorum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from attribution_oracle.store.merkle import MerkleTree, leaf_hash

# EIP-55 checksums cost a keccak each; reports repeat the same few accounts thousands of times
to_checksum_address = lru_cache(maxsize=65_536)(to_checksum_address)


def rewards_leaf_value(account: str, cumulative: int) -> bytes:
    """ABI encoding of a rewards leaf's value."""
    return encode(["address", "uint256"], [to_checksum_address(account), int(cumulative)])


@dataclass
class RewardsTree:
    """Cumulative amounts per account and their Merkle tree."""

    amounts: dict[str, int]  # checksummed account -> cumulative wei

    def __post_init__(self) -> None:
        merged: dict[str, int] = {}
        for account, amount in self.amounts.items():
            key = to_checksum_address(account)
            merged[key] = merged.get(key, 0) + int(amount)
        self.amounts = {a: merged[a] for a in sorted(merged, key=str.lower) if merged[a] > 0}
        self.accounts = list(self.amounts)
        self._tree = (
            MerkleTree([rewards_leaf_value(a, self.amounts[a]) for a in self.accounts]) if self.amounts else None
        )

    @property
    def root(self) -> bytes:
        """The root (32 zero bytes for an empty tree, which the contract refuses)."""
        return self._tree.root if self._tree else bytes(32)

    @property
    def total(self) -> int:
        """Sum of every cumulative amount."""
        return sum(self.amounts.values())

    def proof(self, account: str) -> tuple[int, list[bytes]]:
        """``(cumulative, proof)`` for an account; ``KeyError`` if it earned nothing."""
        key = to_checksum_address(account)
        if key not in self.amounts:
            raise KeyError(f"{key} has no rewards in this report")
        return self.amounts[key], self._tree.proof(self.accounts.index(key))


def shares_hash(shares: Mapping[str, int]) -> bytes:
    """keccak256 of the canonical JSON of one inference's shares (sorted accounts, decimal strings)."""
    from attribution_oracle.attribution.shares import canonical_bytes

    return keccak(canonical_bytes({to_checksum_address(a): v for a, v in shares.items()}))


def retrieved_hash(retrieved: Sequence[str]) -> bytes:
    """keccak256 of the canonical JSON list of retrieved contribution ids (rank order, no whitespace)."""
    import json

    return keccak(json.dumps([str(c) for c in retrieved], separators=(",", ":")).encode())


def attribution_leaf_value(
    request_id: int, model_id: int, shares_digest: bytes, retrieved_digest: bytes | None = None
) -> bytes:
    """ABI encoding of an attribution leaf's value (four words when the inference retrieved contributions)."""
    if retrieved_digest is None:
        return encode(["uint256", "uint256", "bytes32"], [int(request_id), int(model_id), shares_digest])
    return encode(
        ["uint256", "uint256", "bytes32", "bytes32"], [int(request_id), int(model_id), shares_digest, retrieved_digest]
    )


def attribution_root(leaves: Sequence[tuple]) -> bytes:
    """Root over ``(requestId, modelId, sharesHash[, retrievedHash])`` leaves in the given order (zero bytes when
    empty)."""
    if not leaves:
        return bytes(32)
    return MerkleTree([attribution_leaf_value(*leaf) for leaf in leaves]).root


def rewards_leaf(account: str, cumulative: int) -> bytes:
    """The double-hashed rewards leaf (what the contract computes in ``_leaf``)."""
    return leaf_hash(rewards_leaf_value(account, cumulative))
