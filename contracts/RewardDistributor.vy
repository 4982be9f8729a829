# pragma version ~=0.4.3
"""
@title Reward distributor
@custom:contract-name RewardDistributor
@license AGPL-3.0-only
@author attribution-ledger contributors
@notice Holds the OPEN that inference fees set aside for data contributors and
        Datanet owners, and pays it out against epoch reports signed by m of n
        attribution oracles.

        Reports (after Chainlink OCR2's `transmit`): an oracle set of n signer
        addresses and a threshold m; every change bumps `configVersion` and the
        `configDigest` that binds chain id, this contract, the version, the
        signers and m. `submitReport` needs exactly m EIP-712 signatures (domain:
        name, version, chain id, this contract) over the report including the
        current config digest, from distinct signers given in ascending address
        order; low-s only; epochs strictly increase and never run ahead of
        max(block.timestamp, block.number) (so a colluding quorum cannot burn the
        epoch space); `totalCumulative` never decreases and never exceeds all
        OPEN ever funded through `fund` (`totalFunded`). OPEN sent by a plain
        transfer is not counted (and cannot be paid out): fund the pool with `fund`.

        Claims (after Uniswap's MerkleDistributor, but cumulative): the rewards
        root commits to leaves keccak256(keccak256(abi_encode(account,
        cumulativeAmount))) with sorted-pair hashing; `claim` pays
        `cumulativeAmount - claimed[account]` to `account`, whoever sends it,
        marking the claim before transferring. One claim collects every epoch.
        The sum of all claims never exceeds the claimable root's
        `totalCumulative` (`totalClaimed <= rewardsTotal`), whatever the leaves add
        up to. `claimMany` skips accounts with nothing left to claim.

        Trust model (OpenZeppelin TimelockController style): with `claimDelay > 0`
        a new root waits as pending; pending roots mature strictly in order (a
        queue: a new report never restarts the wait of an older one). Before a
        pending root matures governance may `veto` it (and every later pending
        one, built on top of it): the epoch floor goes back to the last report
        still standing and the config digest is bumped, so the vetoed
        signatures can never be replayed and the next report may carry the
        cumulative amounts again. Oracle-set and claim-delay changes are queued
        (`proposeOracleConfig`, `proposeClaimDelay`: an event and public views)
        and take effect only `governanceDelay()` = max(claimDelay, 1 day) later
        (`applyOracleConfig` / `applyClaimDelay`, callable by anyone): every root
        the outgoing set reported before the change matures, and can be claimed,
        before a root of the incoming set can. Oracles cannot pay out more than
        was funded; governance cannot forge a report, only veto, or rotate the
        oracle set after the delay.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator as eip712
from snekmate.utils import merkle_proof_verification as merkle
from interfaces import IRewardPool

initializes: ownable

implements: IRewardPool
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
# @dev The shortest wait of a queued oracle-set or claim-delay change.
MIN_GOVERNANCE_DELAY: constant(uint256) = 86400
# @dev How many reports may wait as pending at once (a ring buffer; slots are reused).
MAX_PENDING: constant(uint256) = 256
# @dev The three packed words (`_latest`, `_claimState`, `PendingReport.meta`) share one layout:
#      high (bits 160..255) | amount (bits 64..159) | low (bits 0..63). Only `_pack`, `_high_field`,
#      `_amount_field` and `_low_field` touch the bits.
LOW_MASK: constant(uint256) = 2**64 - 1
# @dev Amounts are packed in 96 bits (7.9e28 wei, far above any OPEN supply).
AMOUNT_MASK: constant(uint256) = 2**96 - 1

REPORT_TYPEHASH: constant(bytes32) = keccak256(
    "Report(bytes32 configDigest,uint64 epoch,bytes32 rewardsRoot,uint256 totalCumulative,bytes32 attributionRoot,string reportURI)"
)


struct Signature:
    v: uint8
    r: bytes32
    s: bytes32


struct PendingReport:
    rewardsRoot: bytes32
    # @dev (claimableAt << 160) | (totalCumulative << 64) | epoch
    meta: uint256


# @notice Emitted when the oracle set changes; `configDigest` binds chain, contract, version,
#       signers and threshold, and every report must carry it.
event OracleConfigSet:
    configVersion: indexed(uint256)
    configDigest: bytes32
    signers: DynArray[address, MAX_SIGNERS]
    threshold: uint256

# @notice Emitted when governance queues a new oracle set, applicable at `executableAt`.
event OracleConfigQueued:
    signers: DynArray[address, MAX_SIGNERS]
    threshold: uint256
    executableAt: uint256

# @notice Emitted when governance cancels the queued oracle set.
event OracleConfigCancelled:
    signers: DynArray[address, MAX_SIGNERS]
    threshold: uint256

# @notice Emitted when a quorum-signed report for `epoch` is accepted; its root is claimable at
#       `claimableAt` (at once when there is no claim delay).
event ReportSubmitted:
    epoch: indexed(uint64)
    rewardsRoot: bytes32
    totalCumulative: uint256
    attributionRoot: bytes32
    reportURI: String[256]
    claimableAt: uint256
    transmitter: indexed(address)

# @notice Emitted for every pending report governance vetoes.
event ReportVetoed:
    epoch: indexed(uint64)
    rewardsRoot: bytes32

# @notice Emitted when `amount` OPEN is paid to `account` (cumulative `cumulativeAmount`); `sender`
#       sent the claim.
event Claimed:
    account: indexed(address)
    amount: uint256
    cumulativeAmount: uint256
    sender: indexed(address)

# @notice Emitted when the claim delay takes effect.
event ClaimDelaySet:
    claimDelay: uint256

# @notice Emitted when governance queues a new claim delay, applicable at `executableAt`.
event ClaimDelayQueued:
    claimDelay: uint256
    executableAt: uint256

# @notice Emitted when governance cancels the queued claim delay.
event ClaimDelayCancelled:
    claimDelay: uint256

# @notice Emitted when `funder` adds `amount` OPEN to the pool; `totalFunded` is all OPEN ever funded.
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

# @dev A queued oracle-set change (queuedConfigAt == 0 when none).
_queuedSigners: DynArray[address, MAX_SIGNERS]
queuedThreshold: public(uint256)
queuedConfigAt: public(uint256)
# @dev A queued claim-delay change (queuedClaimDelayAt == 0 when none).
queuedClaimDelay: public(uint256)
queuedClaimDelayAt: public(uint256)

# @dev (claimable epoch << 160) | (latest total << 64) | latest epoch, where "latest" is the last accepted
#      report still standing (claimable or pending) and "claimable" the one claims are checked against.
_latest: uint256

# @dev The root claims are checked against.
rewardsRoot: public(bytes32)
# @dev The claim path's one hot word: (totalClaimed << 160) | (claimable total << 64) | claimableAt of the
#      oldest pending report (0 when none), so a claim reads and writes a single slot besides its own.
_claimState: uint256

# @dev Pending reports, oldest first: ring positions [_pendingHead, _pendingTail) modulo MAX_PENDING.
_pending: HashMap[uint256, PendingReport]
_pendingHead: uint256
_pendingTail: uint256

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
@view
def governanceDelay() -> uint256:
    """
    @notice How long a proposed oracle-set or claim-delay change waits: max(claimDelay, 1 day).
    @return uint256 Seconds.
    """
    return self._governance_delay()


@external
def proposeOracleConfig(signers_: DynArray[address, MAX_SIGNERS], threshold_: uint256):
    """
    @notice Queues a new oracle set (governance only); anyone may apply it once
            `governanceDelay()` has passed. Replaces a change already queued.
    @param signers_ Distinct, non-zero signer addresses.
    @param threshold_ Signatures required, 1 <= m <= n.
    """
    ownable._check_owner()
    self._check_config(signers_, threshold_)
    executable_at: uint256 = block.timestamp + self._governance_delay()
    self._queuedSigners = signers_
    self.queuedThreshold = threshold_
    self.queuedConfigAt = executable_at
    log OracleConfigQueued(signers=signers_, threshold=threshold_, executableAt=executable_at)


@external
def applyOracleConfig():
    """
    @notice Applies the queued oracle set once its delay has passed (anyone); bumps
            the config digest so signatures made for the old set no longer verify.
    """
    executable_at: uint256 = self.queuedConfigAt
    assert executable_at != 0, "RewardDistributor: no config queued"
    assert block.timestamp >= executable_at, "RewardDistributor: config change still timelocked"
    self._promote()
    self._set_config(self._queuedSigners, self.queuedThreshold)
    self._queuedSigners = []
    self.queuedThreshold = 0
    self.queuedConfigAt = 0


@external
def cancelOracleConfig():
    """
    @notice Drops the queued oracle set (governance only).
    """
    ownable._check_owner()
    assert self.queuedConfigAt != 0, "RewardDistributor: no config queued"
    log OracleConfigCancelled(signers=self._queuedSigners, threshold=self.queuedThreshold)
    self._queuedSigners = []
    self.queuedThreshold = 0
    self.queuedConfigAt = 0


@external
@view
def getQueuedSigners() -> DynArray[address, MAX_SIGNERS]:
    """
    @notice The signer set of the queued oracle-set change (empty when none).
    @return DynArray The signer addresses.
    """
    return self._queuedSigners


@external
def proposeClaimDelay(claim_delay: uint256):
    """
    @notice Queues a new veto window for future reports (governance only); anyone
            may apply it once `governanceDelay()` has passed.
    @param claim_delay Seconds, at most MAX_CLAIM_DELAY.
    """
    ownable._check_owner()
    assert claim_delay <= MAX_CLAIM_DELAY, "RewardDistributor: delay too long"
    executable_at: uint256 = block.timestamp + self._governance_delay()
    self.queuedClaimDelay = claim_delay
    self.queuedClaimDelayAt = executable_at
    log ClaimDelayQueued(claimDelay=claim_delay, executableAt=executable_at)


@external
def applyClaimDelay():
    """
    @notice Applies the queued claim delay once its delay has passed (anyone).
    """
    executable_at: uint256 = self.queuedClaimDelayAt
    assert executable_at != 0, "RewardDistributor: no claim delay queued"
    assert block.timestamp >= executable_at, "RewardDistributor: claim delay change still timelocked"
    self._set_claim_delay(self.queuedClaimDelay)
    self.queuedClaimDelay = 0
    self.queuedClaimDelayAt = 0


@external
def cancelClaimDelay():
    """
    @notice Drops the queued claim delay (governance only).
    """
    ownable._check_owner()
    assert self.queuedClaimDelayAt != 0, "RewardDistributor: no claim delay queued"
    log ClaimDelayCancelled(claimDelay=self.queuedClaimDelay)
    self.queuedClaimDelay = 0
    self.queuedClaimDelayAt = 0


@external
def veto(fromEpoch: uint64 = 0):
    """
    @notice Discards the pending report of `fromEpoch` and every later pending one
            (they carry its amounts forward) before they become claimable
            (governance only). The epoch floor returns to the last report still
            standing and the config digest is bumped (same signers and threshold),
            so the vetoed reports' signatures can never be submitted again.
    @param fromEpoch The first epoch to discard; 0 discards every pending report.
    """
    ownable._check_owner()
    self._promote()
    head: uint256 = self._pendingHead
    tail: uint256 = self._pendingTail
    assert tail > head, "RewardDistributor: nothing pending"
    first: uint256 = head
    if fromEpoch != 0:
        first = tail
        for i: uint256 in range(MAX_PENDING):
            if head + i >= tail:
                break
            if self._low_field(self._pending[(head + i) % MAX_PENDING].meta) == convert(fromEpoch, uint256):
                first = head + i
                break
        assert first < tail, "RewardDistributor: epoch not pending"
    for i: uint256 in range(MAX_PENDING):
        if first + i >= tail:
            break
        entry: PendingReport = self._pending[(first + i) % MAX_PENDING]
        log ReportVetoed(epoch=convert(self._low_field(entry.meta), uint64), rewardsRoot=entry.rewardsRoot)
    self._pendingTail = first
    latest: uint256 = self._latest
    standing_total: uint256 = 0
    standing_epoch: uint256 = 0
    if first > head:
        standing: uint256 = self._pending[(first - 1) % MAX_PENDING].meta
        standing_total = self._amount_field(standing)
        standing_epoch = self._low_field(standing)
    else:
        # nothing left pending: back to the claimable report
        state: uint256 = self._claimState
        standing_total = self._amount_field(state)
        standing_epoch = self._high_field(latest)
        self._claimState = self._pack(self._high_field(state), standing_total, 0)
    self._latest = self._pack(self._high_field(latest), standing_total, standing_epoch)
    self._set_config(self.signers, self.threshold)


@external
def fund(amount: uint256):
    """
    @notice Adds OPEN to the reward pool (pulled from the caller, who must have
            approved this contract). The InferenceMarket funds the pool this way.
    @param amount The amount in wei.
    """
    assert amount > 0, "RewardDistributor: zero amount"
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True), "RewardDistributor: token transferFrom failed"
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
            signers, in ascending signer address order. With a claim delay (or
            reports still pending) it joins the pending queue behind every older
            pending report.
    @param epoch Must exceed `latestEpoch` and be at most max(block.timestamp, block.number).
    @param rewardsRoot_ Root of the cumulative (account, amount) tree.
    @param totalCumulative Sum of all cumulative amounts in the tree.
    @param attributionRoot Root of the per-inference attribution tree (an audit trail).
    @param reportURI Where the full report JSON lives.
    @param signatures The oracle signatures over the EIP-712 Report.
    """
    self._promote()
    latest: uint256 = self._latest
    assert convert(epoch, uint256) > self._low_field(latest), "RewardDistributor: epoch not increasing"
    assert convert(epoch, uint256) <= max(block.timestamp, block.number), "RewardDistributor: epoch too far ahead"
    assert rewardsRoot_ != empty(bytes32), "RewardDistributor: empty root"
    assert totalCumulative >= self._amount_field(latest), "RewardDistributor: cumulative total decreased"
    assert totalCumulative <= self.totalFunded, "RewardDistributor: exceeds funded"
    assert totalCumulative <= AMOUNT_MASK, "RewardDistributor: total too large"
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

    epoch_: uint256 = convert(epoch, uint256)
    head: uint256 = self._pendingHead
    tail: uint256 = self._pendingTail
    claimable_at: uint256 = block.timestamp + self.claimDelay
    state: uint256 = self._claimState
    if tail > head:
        # mature in order: never before the report queued ahead of this one
        claimable_at = max(claimable_at, self._high_field(self._pending[(tail - 1) % MAX_PENDING].meta))
    if claimable_at <= block.timestamp:
        # claimable at once (no delay and nothing pending)
        self.rewardsRoot = rewardsRoot_
        self._latest = self._pack(epoch_, totalCumulative, epoch_)
        self._claimState = self._pack(self._high_field(state), totalCumulative, 0)
    else:
        assert tail - head < MAX_PENDING, "RewardDistributor: too many pending reports"
        self._pending[tail % MAX_PENDING] = PendingReport(
            rewardsRoot=rewardsRoot_, meta=self._pack(claimable_at, totalCumulative, epoch_)
        )
        self._pendingTail = tail + 1
        self._latest = self._pack(self._high_field(latest), totalCumulative, epoch_)
        if tail == head:
            self._claimState = self._pack(self._high_field(state), self._amount_field(state), claimable_at)
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
    state: uint256 = self._claimState
    if self._low_field(state) != 0 and block.timestamp >= self._low_field(state):
        self._promote()
        state = self._claimState
    assert merkle._verify(proof, self.rewardsRoot, self._leaf(account, cumulativeAmount)), "RewardDistributor: invalid proof"
    already: uint256 = self.claimed[account]
    assert cumulativeAmount > already, "RewardDistributor: nothing to claim"
    amount: uint256 = cumulativeAmount - already
    total_claimed: uint256 = self._high_field(state) + amount
    assert total_claimed <= self._amount_field(state), "RewardDistributor: exceeds the claimable total"
    self.claimed[account] = cumulativeAmount
    self._claimState = self._pack(total_claimed, self._amount_field(state), self._low_field(state))
    assert extcall token.transfer(account, amount, default_return_value=True), "RewardDistributor: token transfer failed"
    log Claimed(account=account, amount=amount, cumulativeAmount=cumulativeAmount, sender=msg.sender)
    return amount


@external
@nonreentrant
def claimMany(
    accounts: DynArray[address, MAX_BATCH],
    cumulativeAmounts: DynArray[uint256, MAX_BATCH],
    proofs: DynArray[DynArray[bytes32, MAX_PROOF], MAX_BATCH],
) -> uint256:
    """
    @notice Several claims in one transaction (e.g. a relayer paying gas for many).
            Accounts with nothing left to claim (e.g. one that claimed itself a
            moment earlier) are skipped, so one front-run claim cannot make the
            whole batch revert; an invalid proof still reverts it.
    @param accounts The rewarded accounts.
    @param cumulativeAmounts Their cumulative amounts.
    @param proofs Their proofs.
    @return uint256 The total paid.
    """
    assert len(accounts) == len(cumulativeAmounts) and len(accounts) == len(proofs), "RewardDistributor: length mismatch"
    self._promote()
    root: bytes32 = self.rewardsRoot
    state: uint256 = self._claimState
    total_claimed: uint256 = self._high_field(state)
    claimable_total: uint256 = self._amount_field(state)
    total: uint256 = 0
    for i: uint256 in range(MAX_BATCH):
        if i >= len(accounts):
            break
        account: address = accounts[i]
        cumulative: uint256 = cumulativeAmounts[i]
        already: uint256 = self.claimed[account]
        if cumulative <= already:
            continue
        assert merkle._verify(proofs[i], root, self._leaf(account, cumulative)), "RewardDistributor: invalid proof"
        amount: uint256 = cumulative - already
        total_claimed += amount
        assert total_claimed <= claimable_total, "RewardDistributor: exceeds the claimable total"
        self.claimed[account] = cumulative
        total += amount
        assert extcall token.transfer(account, amount, default_return_value=True), "RewardDistributor: token transfer failed"
        log Claimed(account=account, amount=amount, cumulativeAmount=cumulative, sender=msg.sender)
    self._claimState = self._pack(total_claimed, self._amount_field(state), self._low_field(state))
    return total


# --------------------------------------------------------------------- views


@external
@view
def latestEpoch() -> uint64:
    """
    @notice The epoch of the last accepted report still standing (claimable or pending):
            the floor the next report's epoch must exceed.
    @return uint64 The epoch (0 before the first report).
    """
    return convert(self._low_field(self._latest), uint64)


@external
@view
def latestTotal() -> uint256:
    """
    @notice The cumulative total of the last accepted report still standing.
    @return uint256 The total in wei.
    """
    return self._amount_field(self._latest)


@external
@view
def rewardsEpoch() -> uint64:
    """
    @notice The epoch of the claimable root (as of the last state change).
    @return uint64 The epoch.
    """
    return convert(self._high_field(self._latest), uint64)


@external
@view
def rewardsTotal() -> uint256:
    """
    @notice The cumulative total of the claimable root (as of the last state change).
    @return uint256 The total in wei.
    """
    return self._amount_field(self._claimState)


@external
@view
def totalClaimed() -> uint256:
    """
    @notice Everything ever paid out by claims (never above `rewardsTotal`).
    @return uint256 The total in wei.
    """
    return self._high_field(self._claimState)


@external
@view
def pendingCount() -> uint256:
    """
    @notice How many reports wait as pending (matured ones not yet promoted included).
    @return uint256 The count.
    """
    return self._pendingTail - self._pendingHead


@external
@view
def pendingReport(index: uint256) -> (uint64, bytes32, uint256, uint256):
    """
    @notice The `index`-th pending report, oldest first.
    @param index 0 for the oldest.
    @return uint64 Its epoch.
    @return bytes32 Its rewards root.
    @return uint256 Its cumulative total.
    @return uint256 When it becomes claimable.
    """
    assert index < self._pendingTail - self._pendingHead, "RewardDistributor: no such pending report"
    entry: PendingReport = self._pending[(self._pendingHead + index) % MAX_PENDING]
    return (
        convert(self._low_field(entry.meta), uint64),
        entry.rewardsRoot,
        self._amount_field(entry.meta),
        self._high_field(entry.meta),
    )


@external
@view
def pendingRoot() -> bytes32:
    """
    @notice The rewards root of the oldest pending report (zero when none).
    @return bytes32 The root.
    """
    if self._pendingTail == self._pendingHead:
        return empty(bytes32)
    return self._pending[self._pendingHead % MAX_PENDING].rewardsRoot


@external
@view
def pendingEpoch() -> uint64:
    """
    @notice The epoch of the oldest pending report (0 when none).
    @return uint64 The epoch.
    """
    if self._pendingTail == self._pendingHead:
        return 0
    return convert(self._low_field(self._pending[self._pendingHead % MAX_PENDING].meta), uint64)


@external
@view
def pendingClaimableAt() -> uint256:
    """
    @notice When the oldest pending report becomes claimable (0 when none).
    @return uint256 A timestamp.
    """
    return self._low_field(self._claimState)


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
    total: uint256 = self._amount_field(self._claimState)
    last: uint256 = self._last_matured()
    if last > self._pendingHead:
        entry: PendingReport = self._pending[(last - 1) % MAX_PENDING]
        root = entry.rewardsRoot
        total = self._amount_field(entry.meta)
    if not merkle._verify(proof, root, self._leaf(account, cumulativeAmount)):
        return 0
    if cumulativeAmount <= self.claimed[account]:
        return 0
    return min(cumulativeAmount - self.claimed[account], total - min(total, self._high_field(self._claimState)))


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
def _pack(high: uint256, amount: uint256, low: uint256) -> uint256:
    """
    @dev Packs one word: (high << 160) | (amount << 64) | low. `_latest` is (claimable epoch,
         latest total, latest epoch); `_claimState` is (totalClaimed, claimable total, claimableAt
         of the oldest pending report); `PendingReport.meta` is (claimableAt, totalCumulative, epoch).
         Callers keep amount <= AMOUNT_MASK and low <= LOW_MASK.
    @param high The top field (96 bits).
    @param amount The middle field, an OPEN amount (96 bits).
    @param low The bottom field, an epoch or a timestamp (64 bits).
    @return The packed word.
    """
    return (high << 160) | (amount << 64) | low


@internal
@pure
def _high_field(word: uint256) -> uint256:
    """
    @dev The top field of a word built by `_pack`.
    @param word The packed word.
    @return Bits 160..255.
    """
    return word >> 160


@internal
@pure
def _amount_field(word: uint256) -> uint256:
    """
    @dev The amount field of a word built by `_pack`.
    @param word The packed word.
    @return Bits 64..159.
    """
    return (word >> 64) & AMOUNT_MASK


@internal
@pure
def _low_field(word: uint256) -> uint256:
    """
    @dev The bottom field of a word built by `_pack`.
    @param word The packed word.
    @return Bits 0..63.
    """
    return word & LOW_MASK


@internal
@pure
def _leaf(account: address, amount: uint256) -> bytes32:
    """
    @dev The Merkle leaf of a cumulative claim: keccak256(keccak256(abi_encode(account, amount))).
    @param account The account paid.
    @param amount Its cumulative amount.
    @return The leaf.
    """
    return keccak256(keccak256(abi_encode(account, amount)))


@internal
@view
def _governance_delay() -> uint256:
    """
    @dev The wait of a queued oracle-set or claim-delay change: max(claimDelay, 1 day).
    @return The delay in seconds.
    """
    return max(self.claimDelay, MIN_GOVERNANCE_DELAY)


@internal
@view
def _last_matured() -> uint256:
    """
    @dev One past the newest pending report whose time has come (claimableAt grows along
         the queue, so a binary search finds it); equals the head when none has matured.
    @return The queue index one past the last matured report.
    """
    low: uint256 = self._pendingHead
    high: uint256 = self._pendingTail
    for i: uint256 in range(9):  # log2(MAX_PENDING) + 1
        if low >= high:
            break
        mid: uint256 = (low + high) // 2
        if self._high_field(self._pending[mid % MAX_PENDING].meta) <= block.timestamp:
            low = mid + 1
        else:
            high = mid
    return low


@internal
def _promote():
    """
    @dev Makes every pending report whose delay has passed claimable (the newest of them wins).
    """
    state: uint256 = self._claimState
    head_at: uint256 = self._low_field(state)
    if head_at == 0 or block.timestamp < head_at:
        return
    last: uint256 = self._last_matured()
    entry: PendingReport = self._pending[(last - 1) % MAX_PENDING]
    self.rewardsRoot = entry.rewardsRoot
    self._pendingHead = last
    next_at: uint256 = 0
    if last < self._pendingTail:
        next_at = self._high_field(self._pending[last % MAX_PENDING].meta)
    self._claimState = self._pack(self._high_field(state), self._amount_field(entry.meta), next_at)
    latest: uint256 = self._latest
    self._latest = self._pack(self._low_field(entry.meta), self._amount_field(latest), self._low_field(latest))


@internal
@view
def _check_config(signers_: DynArray[address, MAX_SIGNERS], threshold_: uint256):
    """
    @dev Reverts unless the signers are non-zero and distinct and 0 < threshold <= their count.
    @param signers_ The oracle signers.
    @param threshold_ How many must sign a report.
    """
    assert threshold_ > 0 and threshold_ <= len(signers_), "RewardDistributor: bad threshold"
    for i: uint256 in range(MAX_SIGNERS):
        if i >= len(signers_):
            break
        assert signers_[i] != empty(address), "RewardDistributor: zero signer"
        for j: uint256 in range(MAX_SIGNERS):
            if j >= i:
                break
            assert signers_[j] != signers_[i], "RewardDistributor: duplicate signer"


@internal
def _set_config(signers_: DynArray[address, MAX_SIGNERS], threshold_: uint256):
    """
    @dev Replaces the oracle set and bumps the config version and digest, so signatures over the old
         digest can never be replayed.
    @param signers_ The new oracle signers.
    @param threshold_ How many must sign a report.
    """
    self._check_config(signers_, threshold_)
    for old: address in self.signers:
        self.isSigner[old] = False
    for s: address in signers_:
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
    """
    @dev Sets the claim delay, at most MAX_CLAIM_DELAY.
    @param claim_delay The delay in seconds.
    """
    assert claim_delay <= MAX_CLAIM_DELAY, "RewardDistributor: delay too long"
    self.claimDelay = claim_delay
    log ClaimDelaySet(claimDelay=claim_delay)
