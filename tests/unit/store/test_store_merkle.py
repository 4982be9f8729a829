"""Merkle trees matching the contracts: every proof verifies, tampering is caught, the root binds the order."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_oracle.store.merkle import MerkleTree, leaf_hash, verify

hashes = st.binary(min_size=32, max_size=32)
trees = st.lists(hashes, min_size=1, max_size=70, unique=True)


def _values(n: int) -> list[bytes]:
    return [hashlib.sha256(f"contribution {i}".encode()).digest() for i in range(n)]


@settings(max_examples=200)
@given(values=trees)
def test_every_proof_verifies(values: list[bytes]) -> None:
    tree = MerkleTree(values)
    depth = math.ceil(math.log2(len(values)))
    for index, value in enumerate(values):
        proof = tree.proof(index)
        assert len(proof) <= depth
        assert proof == tree.proof_for(value)
        assert verify(proof, tree.root, leaf_hash(value))


@settings(max_examples=200)
@given(values=trees, data=st.data())
def test_a_tampered_proof_does_not_verify(values: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(values)
    index = data.draw(st.integers(0, len(values) - 1), label="leaf")
    proof = tree.proof(index)
    leaf = leaf_hash(values[index])
    if proof:
        step = data.draw(st.integers(0, len(proof) - 1), label="step")
        byte = data.draw(st.integers(0, 31), label="byte")
        bit = data.draw(st.integers(0, 7), label="bit")
        flipped = bytearray(proof[step])
        flipped[byte] ^= 1 << bit
        assert not verify([*proof[:step], bytes(flipped), *proof[step + 1 :]], tree.root, leaf)
        assert not verify(proof[:-1], tree.root, leaf)  # a truncated proof
    extra = data.draw(hashes, label="extra sibling")
    assert not verify([*proof, extra], tree.root, leaf)  # a lengthened proof


@settings(max_examples=200)
@given(values=trees, data=st.data())
def test_a_tampered_leaf_does_not_verify(values: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(values)
    index = data.draw(st.integers(0, len(values) - 1), label="leaf")
    outsider = data.draw(hashes.filter(lambda h: h not in values), label="outsider")
    assert not verify(tree.proof(index), tree.root, leaf_hash(outsider))
    assert not verify(tree.proof(index), tree.root, values[index])  # the raw value is not its leaf
    with pytest.raises(KeyError):
        tree.proof_for(outsider)


@settings(max_examples=200)
@given(values=st.lists(hashes, min_size=3, max_size=70, unique=True))
def test_root_depends_on_order(values: list[bytes]) -> None:
    rotated = values[1:] + values[:1]  # every leaf gets a new sibling
    assert MerkleTree(rotated).root != MerkleTree(values).root


def _pairs(values: list[bytes]) -> set[frozenset[bytes]]:
    """How the leaves are paired on the first level (the odd one out alone)."""
    return {frozenset(values[i : i + 2]) for i in range(0, len(values), 2)}


@settings(max_examples=200)
@given(values=st.lists(hashes, min_size=2, max_size=40, unique=True), data=st.data())
def test_any_reordering_that_changes_the_pairs_changes_the_root(values: list[bytes], data: st.DataObject) -> None:
    reordered = data.draw(st.permutations(values), label="reordered")
    if _pairs(reordered) != _pairs(values):
        assert MerkleTree(reordered).root != MerkleTree(values).root


def test_sorted_pair_hashing_hides_a_swap_of_two_siblings() -> None:
    """Inherent to the snekmate / OpenZeppelin convention the contracts use: the order *within* a pair is not bound
    by the root, so consumers must take approval order from the catalog (``approved_hashes``), not from the root."""
    a, b, c = _values(3)
    assert MerkleTree([a, b, c]).root == MerkleTree([b, a, c]).root
    assert MerkleTree([a, b, c]).root != MerkleTree([a, c, b]).root


@given(value=hashes)
def test_a_single_leaf_is_its_own_root(value: bytes) -> None:
    tree = MerkleTree([value])
    assert tree.root == leaf_hash(value)
    assert tree.proof(0) == []
    assert verify([], tree.root, leaf_hash(value))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 9, 17, 33, 100])
def test_odd_and_even_sizes(n: int) -> None:
    values = _values(n)
    tree = MerkleTree(values)
    assert all(verify(tree.proof(i), tree.root, leaf_hash(v)) for i, v in enumerate(values))
    with pytest.raises(IndexError):
        tree.proof(n)


def test_leaf_rule_matches_the_contract() -> None:
    """``leafOf(h) = keccak256(keccak256(abi_encode(h)))``; a bytes32 is its own ABI encoding."""
    from eth_utils import keccak

    value = _values(1)[0]
    assert leaf_hash(value) == keccak(keccak(value))
    with pytest.raises(ValueError):
        MerkleTree([])
