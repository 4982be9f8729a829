# pragma version ~=0.4.3
"""
@title Single-shot Merkle claim (reference for the gas benchmark only)
@custom:contract-name SingleShotMerkleClaim
@license AGPL-3.0-only
@notice Uniswap's MerkleDistributor in Vyper: one immutable root, leaves
        indexed by position, a claimed bitmap (256 claims per storage word).
        Leaves are keccak256(keccak256(abi_encode(index, account, amount)))
        with sorted-pair hashing, so the package's MerkleTree builds the tree
        (Uniswap hashes abi.encodePacked once; the extra keccak costs ~40 gas).
        Not deployed by the system: benchmarks/gas.py compiles it to compare a
        claim against RewardDistributor.claim, which instead keeps one
        cumulative amount per account so a root can be replaced every epoch.
"""

from ethereum.ercs import IERC20
from snekmate.utils import merkle_proof_verification as merkle

MAX_PROOF: constant(uint256) = 64


event Claimed:
    index: uint256
    account: indexed(address)
    amount: uint256


token: public(immutable(IERC20))
merkleRoot: public(immutable(bytes32))
_claimedBitMap: HashMap[uint256, uint256]


@deploy
def __init__(token_: IERC20, merkle_root: bytes32):
    """
    @notice Deploys a distributor for one fixed root (fund it with a plain transfer).
    @param token_ The token paid out.
    @param merkle_root Root of the (index, account, amount) tree.
    """
    token = token_
    merkleRoot = merkle_root


@external
@view
def isClaimed(index: uint256) -> bool:
    """
    @notice Whether leaf `index` was claimed.
    @param index The leaf index.
    @return bool True once claimed.
    """
    return self._is_claimed(index)


@external
def claim(index: uint256, account: address, amount: uint256, proof: DynArray[bytes32, MAX_PROOF]):
    """
    @notice Pays `amount` to `account` once, against a proof of leaf `index`.
    @param index The leaf index.
    @param account The receiver.
    @param amount The amount in wei.
    @param proof The sibling hashes from leaf to root.
    """
    assert not self._is_claimed(index), "SingleShotMerkleClaim: already claimed"
    leaf: bytes32 = keccak256(keccak256(abi_encode(index, account, amount)))
    assert merkle._verify(proof, merkleRoot, leaf), "SingleShotMerkleClaim: invalid proof"
    word: uint256 = index >> 8
    self._claimedBitMap[word] = self._claimedBitMap[word] | (1 << (index & 255))
    assert extcall token.transfer(account, amount, default_return_value=True)
    log Claimed(index=index, account=account, amount=amount)


@internal
@view
def _is_claimed(index: uint256) -> bool:
    return (self._claimedBitMap[index >> 8] >> (index & 255)) & 1 == 1
