# pragma version ~=0.4.3
"""
@title Reward distributor
@custom:contract-name RewardDistributor
@license AGPL-3.0-only
@notice Holds the OPEN that inference fees set aside for data contributors and
        Datanet owners, and pays it out against epoch reports signed by m of n
        attribution oracles.

        Reports (after Chainlink OCR2's `transmit`): an oracle set of n signer
        addresses and a threshold m, managed by governance; every change bumps
        `configVersion` and the `configDigest` that binds chain id, this
        contract, the version, the signers and m. `submitReport` needs exactly
        m EIP-712 signatures (domain: name, version, chain id, this contract)
        over the report including the current config digest, from distinct
        signers given in ascending address order; low-s only; epochs strictly
        increase; `totalCumulative` never decreases and never exceeds all OPEN
        ever funded through `fund` (`totalFunded`). OPEN sent by a plain transfer
        is not counted (and cannot be paid out): fund the pool with `fund`.

        Claims (after Uniswap's MerkleDistributor, but cumulative): the rewards
        root commits to leaves keccak256(keccak256(abi_encode(account,
        cumulativeAmount))) with sorted-pair hashing; `claim` pays
        `cumulativeAmount - claimed[account]` to `account`, whoever sends it,
        marking the claim before transferring. One claim collects every epoch.

        Trust model: with `claimDelay > 0` a new root waits that many seconds as
        `pending` before it becomes claimable; during the wait governance may
        `veto` it (the epoch stays used; the next report carries the cumulative
        amounts again). Oracles cannot pay out more than was funded; governance
        cannot forge a report, only veto one or rotate the oracle set.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator as eip712
from snekmate.utils import merkle_proof_verification as merkle

initializes: ownable
initializes: eip712

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    ownable.renounce_ownership,
    eip712.eip712Domain,
)

MAX_SIGNERS: constant(uint256) = 16
MAX_PROOF: constant(uint256) = 64
MAX_BATCH: constant(uint256) = 64
# @dev A claim delay longer than this would lock funds unreasonably.
MAX_CLAIM_DELAY: constant(uint256) = 30 * 86400
EPOCH_MASK: constant(uint256) = 2**64 - 1

REPORT_TYPEHASH: constant(bytes32) = keccak256(
    "Report(bytes32 configDigest,uint64 epoch,bytes32 rewardsRoot,uint256 totalCumulative,bytes32 attributionRoot,string reportURI)"
)


struct Signature:
    v: uint8
    r: bytes32
    s: bytes32


event OracleConfigSet:
    configVersion: indexed(uint256)
    configDigest: bytes32
    signers: DynArray[address, MAX_SIGNERS]
    threshold: uint256

event ReportSubmitted:
    epoch: indexed(uint64)
    rewardsRoot: bytes32
    totalCumulative: uint256
    attributionRoot: bytes32
    reportURI: String[256]
    claimableAt: uint256
    transmitter: indexed(address)

event ReportVetoed:
    epoch: indexed(uint64)
    rewardsRoot: bytes32

event Claimed:
    account: indexed(address)
    amount: uint256
    cumulativeAmount: uint256
    sender: indexed(address)

event ClaimDelaySet:
    claimDelay: uint256

event Funded:
    funder: indexed(address)
    amount: uint256
    totalFunded: uint256


token: public(immutable(IERC20))

signers: public(DynArray[address, MAX_SIGNERS])
isSigner: public(HashMap[address, bool])
threshold: public(uint256)
configVersion: public(uint256)
configDigest: public(bytes32)
claimDelay: public(uint256)

# @dev Epochs and totals are packed with the total above the 64-bit epoch: (total << 64) | epoch,
#      so each report costs one storage write per root instead of three.
# @dev The last accepted report (claimable or pending): packed total and epoch.
_latest: uint256

# @dev The root claims are checked against, and its packed total and epoch.
rewardsRoot: public(bytes32)
_claimableMeta: uint256

# @dev A report waiting out `claimDelay` (pendingClaimableAt == 0 when none).
pendingRoot: public(bytes32)
_pendingMeta: uint256
pendingClaimableAt: public(uint256)

claimed: public(HashMap[address, uint256])
# @dev All OPEN ever sent in through `fund`.
totalFunded: public(uint256)


@deploy
def __init__(token_: IERC20, signers_: DynArray[address, MAX_SIGNERS], threshold_: uint256, claim_delay: uint256):
    """
    @notice Deploys the distributor; the deployer becomes governance.
    @param token_ The OPEN token.
    @param signers_ The oracle signer addresses.
    @param threshold_ How many of them must sign a report (m).
    @param claim_delay Seconds a new root waits before it is claimable (0 for none).
    """
    ownable.__init__()
    eip712.__init__("AttributionRewards", "1")
    token = token_
    self._set_config(signers_, threshold_)
    self._set_claim_delay(claim_delay)


# ---------------------------------------------------------------- governance


@external
def setOracleConfig(signers_: DynArray[address, MAX_SIGNERS], threshold_: uint256):
    """
    @notice Replaces the oracle set (governance only); bumps the config digest so
            signatures made for the old set no longer verify.
    @param signers_ Distinct, non-zero signer addresses.
    @param threshold_ Signatures required, 1 <= m <= n.
    """
    ownable._check_owner()
    self._set_config(signers_, threshold_)


@external
def setClaimDelay(claim_delay: uint256):
    """
    @notice Sets the veto window for future reports (governance only).
    @param claim_delay Seconds, at most MAX_CLAIM_DELAY.
    """
    ownable._check_owner()
    self._set_claim_delay(claim_delay)


@external
def veto():
    """
    @notice Discards the pending report before it becomes claimable (governance only).
    """
    ownable._check_owner()
    self._promote()
    assert self.pendingClaimableAt != 0, "RewardDistributor: nothing pending"
    log ReportVetoed(epoch=convert(self._pendingMeta & EPOCH_MASK, uint64), rewardsRoot=self.pendingRoot)
    self.pendingRoot = empty(bytes32)
    self._pendingMeta = 0
    self.pendingClaimableAt = 0
    # the next report must exceed the vetoed epoch but may lower the total back to what is claimable
    self._latest = (self._claimableMeta >> 64 << 64) | (self._latest & EPOCH_MASK)


@external
def fund(amount: uint256):
    """
    @notice Adds OPEN to the reward pool (pulled from the caller, who must have
            approved this contract). The InferenceMarket funds the pool this way.
    @param amount The amount in wei.
    """
    assert amount > 0, "RewardDistributor: zero amount"
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True)
    total: uint256 = self.totalFunded + amount
    self.totalFunded = total
    log Funded(funder=msg.sender, amount=amount, totalFunded=total)


# ------------------------------------------------------------------- reports


@external
def submitReport(
    epoch: uint64,
    rewardsRoot_: bytes32,
    totalCumulative: uint256,
    attributionRoot: bytes32,
    reportURI: String[256],
    signatures: DynArray[Signature, MAX_SIGNERS],
):
    """
    @notice Accepts an epoch report signed by exactly `threshold` distinct oracle
            signers, in ascending signer address order.
    @param epoch Must exceed `latestEpoch`.
    @param rewardsRoot_ Root of the cumulative (account, amount) tree.
    @param totalCumulative Sum of all cumulative amounts in the tree.
    @param attributionRoot Root of the per-inference attribution tree (an audit trail).
    @param reportURI Where the full report JSON lives.
    @param signatures The oracle signatures over the EIP-712 Report.
    """
    latest: uint256 = self._latest
    assert convert(epoch, uint256) > latest & EPOCH_MASK, "RewardDistributor: epoch not increasing"
    assert rewardsRoot_ != empty(bytes32), "RewardDistributor: empty root"
    assert totalCumulative >= latest >> 64, "RewardDistributor: cumulative total decreased"
    assert totalCumulative <= self.totalFunded, "RewardDistributor: exceeds funded"
    assert len(signatures) == self.threshold, "RewardDistributor: wrong number of signatures"

    digest: bytes32 = eip712._hash_typed_data_v4(
        keccak256(
            abi_encode(
                REPORT_TYPEHASH,
                self.configDigest,
                epoch,
                rewardsRoot_,
                totalCumulative,
                attributionRoot,
                keccak256(reportURI),
            )
        )
    )
    previous: address = empty(address)
    for sig: Signature in signatures:
        signer: address = ecdsa._recover_vrs(
            digest, convert(sig.v, uint256), convert(sig.r, uint256), convert(sig.s, uint256)
        )
        assert convert(signer, uint160) > convert(previous, uint160), "RewardDistributor: signers not ascending"
        assert self.isSigner[signer], "RewardDistributor: not an oracle signer"
        previous = signer

    self._promote()
    meta: uint256 = (totalCumulative << 64) | convert(epoch, uint256)
    self._latest = meta
    delay: uint256 = self.claimDelay
    claimable_at: uint256 = block.timestamp + delay
    if delay == 0:
        self.rewardsRoot = rewardsRoot_
        self._claimableMeta = meta
        if self.pendingClaimableAt != 0:
            # a report still waiting under an earlier delay is superseded by this newer one; left in place it
            # would later be promoted over this root and roll the claimable epoch back
            self.pendingRoot = empty(bytes32)
            self._pendingMeta = 0
            self.pendingClaimableAt = 0
    else:
        self.pendingRoot = rewardsRoot_
        self._pendingMeta = meta
        self.pendingClaimableAt = claimable_at
    log ReportSubmitted(
        epoch=epoch,
        rewardsRoot=rewardsRoot_,
        totalCumulative=totalCumulative,
        attributionRoot=attributionRoot,
        reportURI=reportURI,
        claimableAt=claimable_at,
        transmitter=msg.sender,
    )


# -------------------------------------------------------------------- claims


@external
@nonreentrant
def claim(account: address, cumulativeAmount: uint256, proof: DynArray[bytes32, MAX_PROOF]) -> uint256:
    """
    @notice Pays `account` everything it earned since its last claim. Anyone may
            send it; the OPEN always goes to `account`.
    @param account The rewarded account.
    @param cumulativeAmount Its cumulative amount in the claimable tree.
    @param proof The Merkle proof of (account, cumulativeAmount).
    @return uint256 The amount paid.
    """
    self._promote()
    return self._claim(account, cumulativeAmount, proof)


@external
@nonreentrant
def claimMany(
    accounts: DynArray[address, MAX_BATCH],
    cumulativeAmounts: DynArray[uint256, MAX_BATCH],
    proofs: DynArray[DynArray[bytes32, MAX_PROOF], MAX_BATCH],
) -> uint256:
    """
    @notice Several claims in one transaction (e.g. a relayer paying gas for many).
    @param accounts The rewarded accounts.
    @param cumulativeAmounts Their cumulative amounts.
    @param proofs Their proofs.
    @return uint256 The total paid.
    """
    assert len(accounts) == len(cumulativeAmounts) and len(accounts) == len(proofs), "RewardDistributor: length mismatch"
    self._promote()
    total: uint256 = 0
    for i: uint256 in range(MAX_BATCH):
        if i >= len(accounts):
            break
        total += self._claim(accounts[i], cumulativeAmounts[i], proofs[i])
    return total


# --------------------------------------------------------------------- views


@external
@view
def latestEpoch() -> uint64:
    """
    @notice The epoch of the last accepted report (claimable or pending).
    @return uint64 The epoch (0 before the first report).
    """
    return convert(self._latest & EPOCH_MASK, uint64)


@external
@view
def latestTotal() -> uint256:
    """
    @notice The cumulative total of the last accepted report.
    @return uint256 The total in wei.
    """
    return self._latest >> 64


@external
@view
def rewardsEpoch() -> uint64:
    """
    @notice The epoch of the claimable root.
    @return uint64 The epoch.
    """
    return convert(self._claimableMeta & EPOCH_MASK, uint64)


@external
@view
def rewardsTotal() -> uint256:
    """
    @notice The cumulative total of the claimable root.
    @return uint256 The total in wei.
    """
    return self._claimableMeta >> 64


@external
@view
def pendingEpoch() -> uint64:
    """
    @notice The epoch of the pending report (0 when none).
    @return uint64 The epoch.
    """
    return convert(self._pendingMeta & EPOCH_MASK, uint64)


@external
@view
def claimable(account: address, cumulativeAmount: uint256, proof: DynArray[bytes32, MAX_PROOF]) -> uint256:
    """
    @notice What `claim` would pay now (0 when the proof does not verify).
    @param account The rewarded account.
    @param cumulativeAmount Its cumulative amount.
    @param proof The Merkle proof.
    @return uint256 The amount in wei.
    """
    root: bytes32 = self.rewardsRoot
    pending_at: uint256 = self.pendingClaimableAt
    if pending_at != 0 and block.timestamp >= pending_at:
        root = self.pendingRoot
    if not merkle._verify(proof, root, self._leaf(account, cumulativeAmount)):
        return 0
    if cumulativeAmount <= self.claimed[account]:
        return 0
    return cumulativeAmount - self.claimed[account]


@external
@view
def reportDigest(
    epoch: uint64, rewardsRoot_: bytes32, totalCumulative: uint256, attributionRoot: bytes32, reportURI: String[256]
) -> bytes32:
    """
    @notice The EIP-712 digest oracles sign for a report under the current config.
    @param epoch The epoch.
    @param rewardsRoot_ The rewards root.
    @param totalCumulative The cumulative total.
    @param attributionRoot The attribution root.
    @param reportURI The report URI.
    @return bytes32 The digest.
    """
    return eip712._hash_typed_data_v4(
        keccak256(
            abi_encode(
                REPORT_TYPEHASH,
                self.configDigest,
                epoch,
                rewardsRoot_,
                totalCumulative,
                attributionRoot,
                keccak256(reportURI),
            )
        )
    )


@external
@view
def getSigners() -> DynArray[address, MAX_SIGNERS]:
    """
    @notice The current oracle signer set.
    @return DynArray The signer addresses.
    """
    return self.signers


# ----------------------------------------------------------------- internals


@internal
@pure
def _leaf(account: address, amount: uint256) -> bytes32:
    return keccak256(keccak256(abi_encode(account, amount)))


@internal
def _claim(account: address, cumulative_amount: uint256, proof: DynArray[bytes32, MAX_PROOF]) -> uint256:
    assert merkle._verify(proof, self.rewardsRoot, self._leaf(account, cumulative_amount)), "RewardDistributor: invalid proof"
    already: uint256 = self.claimed[account]
    assert cumulative_amount > already, "RewardDistributor: nothing to claim"
    amount: uint256 = cumulative_amount - already
    self.claimed[account] = cumulative_amount
    assert extcall token.transfer(account, amount, default_return_value=True)
    log Claimed(account=account, amount=amount, cumulativeAmount=cumulative_amount, sender=msg.sender)
    return amount


@internal
def _promote():
    """
    @dev Makes a pending report claimable once its delay has passed.
    """
    pending_at: uint256 = self.pendingClaimableAt
    if pending_at != 0 and block.timestamp >= pending_at:
        self.rewardsRoot = self.pendingRoot
        self._claimableMeta = self._pendingMeta
        self.pendingRoot = empty(bytes32)
        self._pendingMeta = 0
        self.pendingClaimableAt = 0


@internal
def _set_config(signers_: DynArray[address, MAX_SIGNERS], threshold_: uint256):
    assert threshold_ > 0 and threshold_ <= len(signers_), "RewardDistributor: bad threshold"
    for old: address in self.signers:
        self.isSigner[old] = False
    for s: address in signers_:
        assert s != empty(address), "RewardDistributor: zero signer"
        assert not self.isSigner[s], "RewardDistributor: duplicate signer"
        self.isSigner[s] = True
    self.signers = signers_
    self.threshold = threshold_
    version: uint256 = self.configVersion + 1
    self.configVersion = version
    digest: bytes32 = keccak256(abi_encode(chain.id, self, version, signers_, threshold_))
    self.configDigest = digest
    log OracleConfigSet(configVersion=version, configDigest=digest, signers=signers_, threshold=threshold_)


@internal
def _set_claim_delay(claim_delay: uint256):
    assert claim_delay <= MAX_CLAIM_DELAY, "RewardDistributor: delay too long"
    self.claimDelay = claim_delay
    log ClaimDelaySet(claimDelay=claim_delay)
