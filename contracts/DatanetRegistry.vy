# pragma version ~=0.4.3
"""
@title Datanet registry
@custom:contract-name DatanetRegistry
@license AGPL-3.0-only
@author attribution-ledger contributors
@notice Datanets are curated registries of content-addressed training data.
        Anyone may create one (paying `creationFee` OPEN to the treasury) and
        anyone may contribute to one, escrowing an OPEN stake of at least the
        Datanet's `minStake`. The Datanet owner and the curators it appoints
        approve or reject pending contributions. The owner publishes immutable
        versions: a Merkle root over the content hashes of the first `count`
        approved contributions in approval order.

        Stake rule (exact):
          - approve: the whole stake goes back to the contributor;
          - reject(malicious=False): the whole stake goes back to the contributor;
          - reject(malicious=True): the whole stake goes to the treasury (slashed);
          - withdraw (contributor, while pending): the whole stake goes back.
        So the registry's OPEN balance always equals the sum of pending stakes.

        Duplicate rule: a content hash that is pending or approved in a Datanet
        cannot be contributed to it again. After a withdrawal or an ordinary
        rejection it may be contributed again; after a malicious rejection it is
        blocked for `contribute`, but not for a revealed commitment of another
        contributor (a slashed squatter blocks nobody else for good).

        Front-running (commit-reveal): a plain `contribute` shows the content
        hash in the mempool, where anyone can copy it. A contributor who wants
        the hash bound to itself first sends `commitContribution(keccak256(
        abi_encode(datanetId, contentHash, contributor, salt)))`, which reveals
        nothing, and in a later block `revealContribution(..., salt)`. A reveal
        takes precedence over any pending contribution of the same hash that
        was submitted (or committed) after its commitment: that copy is
        rejected with its stake returned, and the revealer is credited. A
        commitment is one-shot and binds the contributor, so a copied reveal
        from another sender fails.

        Merkle leaves: keccak256(keccak256(abi_encode(contentHash))), pairs hashed
        sorted (snekmate / OpenZeppelin convention).
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.utils import merkle_proof_verification as merkle
from interfaces import IDatanetRegistry

initializes: ownable

implements: IDatanetRegistry

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    ownable.renounce_ownership,
)

# @dev Contribution statuses.
STATUS_NONE: constant(uint8) = 0
STATUS_PENDING: constant(uint8) = 1
STATUS_APPROVED: constant(uint8) = 2
STATUS_REJECTED: constant(uint8) = 3
STATUS_SLASHED: constant(uint8) = 4
STATUS_WITHDRAWN: constant(uint8) = 5

# @dev Upper bound on the page size of every paged view.
MAX_PAGE: constant(uint256) = 100
# @dev Upper bound on proof length accepted by `verifyContribution`.
MAX_PROOF: constant(uint256) = 64


struct Datanet:
    owner: address
    name: String[64]
    metadataURI: String[256]
    minStake: uint256
    contributionCount: uint256
    approvedCount: uint256
    versionCount: uint256
    createdAt: uint256


struct Contribution:
    id: uint256
    datanetId: uint256
    contributor: address
    contentHash: bytes32
    uri: String[256]
    size: uint256
    stake: uint256
    status: uint8
    submittedAt: uint256


struct Version:
    merkleRoot: bytes32
    count: uint256
    manifestURI: String[256]
    publishedAt: uint256


# @notice Emitted when `owner` creates Datanet `datanetId`, paying `feePaid` OPEN to the treasury.
event DatanetCreated:
    datanetId: indexed(uint256)
    owner: indexed(address)
    name: String[64]
    metadataURI: String[256]
    minStake: uint256
    feePaid: uint256

# @notice Emitted when Datanet `datanetId` passes from `previousOwner` to `newOwner`.
event DatanetOwnerChanged:
    datanetId: indexed(uint256)
    previousOwner: indexed(address)
    newOwner: indexed(address)

# @notice Emitted when `curator` is appointed (`enabled`) or removed as a curator of Datanet `datanetId`.
event CuratorSet:
    datanetId: indexed(uint256)
    curator: indexed(address)
    enabled: bool

# @notice Emitted when the owner of Datanet `datanetId` sets its minimum contribution stake.
event MinStakeSet:
    datanetId: indexed(uint256)
    minStake: uint256

# @notice Emitted when `contributor` submits `contentHash` to Datanet `datanetId`, escrowing `stake`.
event ContributionSubmitted:
    contributionId: indexed(uint256)
    datanetId: indexed(uint256)
    contributor: indexed(address)
    contentHash: bytes32
    uri: String[256]
    size: uint256
    stake: uint256

# @notice Emitted when `curator` approves a contribution; `approvalIndex` is its place in approval
#       order and `stakeReturned` the stake paid back.
event ContributionApproved:
    contributionId: indexed(uint256)
    datanetId: indexed(uint256)
    curator: indexed(address)
    approvalIndex: uint256
    stakeReturned: uint256

# @notice Emitted when `curator` rejects a contribution; a `malicious` one loses `stakeSlashed`
#       to the treasury.
event ContributionRejected:
    contributionId: indexed(uint256)
    datanetId: indexed(uint256)
    curator: indexed(address)
    malicious: bool
    stakeReturned: uint256
    stakeSlashed: uint256

# @notice Emitted when `contributor` commits to a contribution it will reveal later.
event ContributionCommitted:
    contributor: indexed(address)
    commitment: indexed(bytes32)

# @notice Emitted when a committed reveal by `byContributor` displaces the earlier plain submission
#       `contributionId` of the same content.
event ContributionDisplaced:
    contributionId: indexed(uint256)
    byContributor: indexed(address)

# @notice Emitted when `contributor` withdraws its pending contribution and takes back its stake.
event ContributionWithdrawn:
    contributionId: indexed(uint256)
    datanetId: indexed(uint256)
    contributor: indexed(address)
    stakeReturned: uint256

# @notice Emitted when the owner of Datanet `datanetId` publishes `version`: the Merkle root over the
#       first `count` approved content hashes.
event VersionPublished:
    datanetId: indexed(uint256)
    version: indexed(uint256)
    merkleRoot: bytes32
    count: uint256
    manifestURI: String[256]

# @notice Emitted when governance sets the Datanet creation fee.
event CreationFeeSet:
    fee: uint256

# @notice Emitted when governance points creation fees and slashed stakes to `treasury`.
event TreasurySet:
    treasury: indexed(address)


# @dev The OPEN token used for fees and stakes.
token: public(immutable(IERC20))
# @dev Receives creation fees and slashed stakes.
treasury: public(address)
# @dev OPEN (wei) charged to create a Datanet.
creationFee: public(uint256)

# @dev Number of Datanets; ids run from 1 to datanetCount.
datanetCount: public(uint256)
# @dev Number of contributions over all Datanets; ids run from 1 to contributionCount.
contributionCount: public(uint256)

_datanets: HashMap[uint256, Datanet]
_contributions: HashMap[uint256, Contribution]
# @dev datanetId => index (0-based, submission order) => contribution id.
_datanetContributions: HashMap[uint256, HashMap[uint256, uint256]]
# @dev datanetId => approval index (0-based) => contribution id.
_approved: HashMap[uint256, HashMap[uint256, uint256]]
# @dev datanetId => version (1-based) => version record.
_versions: HashMap[uint256, HashMap[uint256, Version]]
# @dev datanetId => content hash => id of the pending/approved/slashed contribution holding it.
contributionIdOf: public(HashMap[uint256, HashMap[bytes32, uint256]])
# @dev contributor => commitment => block it was first made in (0 = none).
commitmentBlock: public(HashMap[address, HashMap[bytes32, uint256]])
# @dev contribution id => its precedence: 2 * commitment block for a reveal, 2 * block + 1 for a plain contribute.
_precedence: HashMap[uint256, uint256]
# @dev datanetId => account => curator flag.
isCurator: public(HashMap[uint256, HashMap[address, bool]])


@deploy
def __init__(token_: IERC20, treasury_: address, creation_fee: uint256):
    """
    @notice Deploys the registry; the deployer becomes governance.
    @param token_ The OPEN token.
    @param treasury_ The receiver of creation fees and slashed stakes.
    @param creation_fee The OPEN (wei) charged to create a Datanet.
    """
    assert treasury_ != empty(address), "DatanetRegistry: zero treasury"
    ownable.__init__()
    token = token_
    self.treasury = treasury_
    self.creationFee = creation_fee


# ----------------------------------------------------------------- governance


@external
def setCreationFee(fee: uint256):
    """
    @notice Sets the OPEN fee for creating a Datanet (governance only).
    @param fee The new fee in wei.
    """
    ownable._check_owner()
    self.creationFee = fee
    log CreationFeeSet(fee=fee)


@external
def setTreasury(treasury_: address):
    """
    @notice Sets the receiver of creation fees and slashed stakes (governance only).
    @param treasury_ The new treasury, not the zero address.
    """
    ownable._check_owner()
    assert treasury_ != empty(address), "DatanetRegistry: zero treasury"
    self.treasury = treasury_
    log TreasurySet(treasury=treasury_)


# ------------------------------------------------------------------ datanets


@external
def createDatanet(name: String[64], metadataURI: String[256], minStake: uint256) -> uint256:
    """
    @notice Creates a Datanet owned by the caller, charging `creationFee` OPEN
            (the caller must have approved the registry for it).
    @param name A human-readable name, not empty.
    @param metadataURI Where the Datanet's description lives.
    @param minStake The OPEN (wei) each contribution must escrow.
    @return uint256 The new Datanet id.
    """
    assert len(name) > 0, "DatanetRegistry: empty name"
    fee: uint256 = self.creationFee
    if fee > 0:
        assert extcall token.transferFrom(msg.sender, self.treasury, fee, default_return_value=True), "DatanetRegistry: token transferFrom failed"
    datanet_id: uint256 = self.datanetCount + 1
    self.datanetCount = datanet_id
    self._datanets[datanet_id] = Datanet(
        owner=msg.sender,
        name=name,
        metadataURI=metadataURI,
        minStake=minStake,
        contributionCount=0,
        approvedCount=0,
        versionCount=0,
        createdAt=block.timestamp,
    )
    log DatanetCreated(
        datanetId=datanet_id, owner=msg.sender, name=name, metadataURI=metadataURI, minStake=minStake, feePaid=fee
    )
    return datanet_id


@external
def setCurator(datanetId: uint256, curator: address, enabled: bool):
    """
    @notice Appoints or removes a curator of a Datanet (Datanet owner only).
    @param datanetId The Datanet.
    @param curator The account, not the zero address.
    @param enabled True to appoint, False to remove.
    """
    self._check_datanet_owner(datanetId)
    assert curator != empty(address), "DatanetRegistry: zero curator"
    self.isCurator[datanetId][curator] = enabled
    log CuratorSet(datanetId=datanetId, curator=curator, enabled=enabled)


@external
def setMinStake(datanetId: uint256, minStake: uint256):
    """
    @notice Changes the stake required of future contributions (Datanet owner only).
    @param datanetId The Datanet.
    @param minStake The new minimum stake in wei.
    """
    self._check_datanet_owner(datanetId)
    self._datanets[datanetId].minStake = minStake
    log MinStakeSet(datanetId=datanetId, minStake=minStake)


@external
def transferDatanetOwnership(datanetId: uint256, newOwner: address):
    """
    @notice Hands a Datanet to a new owner (Datanet owner only).
    @param datanetId The Datanet.
    @param newOwner The new owner, not the zero address.
    """
    self._check_datanet_owner(datanetId)
    assert newOwner != empty(address), "DatanetRegistry: zero owner"
    self._datanets[datanetId].owner = newOwner
    log DatanetOwnerChanged(datanetId=datanetId, previousOwner=msg.sender, newOwner=newOwner)


# ------------------------------------------------------------- contributions


@external
def contribute(datanetId: uint256, contentHash: bytes32, uri: String[256], size: uint256, stake: uint256) -> uint256:
    """
    @notice Submits a content-addressed contribution to a Datanet, escrowing
            `stake` OPEN (the caller must have approved the registry for it).
            The hash is visible in the mempool before it lands: use
            `commitContribution` + `revealContribution` to bind it to yourself.
    @param datanetId The Datanet.
    @param contentHash The sha256 of the contribution's bytes.
    @param uri Where the bytes can be fetched.
    @param size The size of the bytes.
    @param stake The OPEN (wei) to escrow; at least the Datanet's `minStake`.
    @return uint256 The new contribution id.
    """
    self._check_datanet_exists(datanetId)
    assert contentHash != empty(bytes32), "DatanetRegistry: empty content hash"
    assert stake >= self._datanets[datanetId].minStake, "DatanetRegistry: stake below minimum"
    assert self.contributionIdOf[datanetId][contentHash] == 0, "DatanetRegistry: duplicate content"
    return self._contribute(datanetId, contentHash, uri, size, stake, 2 * block.number + 1)


@external
def commitContribution(commitment: bytes32):
    """
    @notice Commits to a future contribution without revealing its content hash.
    @param commitment keccak256(abi_encode(datanetId, contentHash, msg.sender, salt)).
    """
    assert commitment != empty(bytes32), "DatanetRegistry: empty commitment"
    if self.commitmentBlock[msg.sender][commitment] == 0:
        self.commitmentBlock[msg.sender][commitment] = block.number
    log ContributionCommitted(contributor=msg.sender, commitment=commitment)


@external
@pure
def contributionCommitment(datanetId: uint256, contentHash: bytes32, contributor: address, salt: bytes32) -> bytes32:
    """
    @notice The commitment `commitContribution` expects.
    @param datanetId The Datanet.
    @param contentHash The sha256 of the contribution's bytes.
    @param contributor Who will reveal it.
    @param salt A secret random value.
    @return bytes32 The commitment.
    """
    return keccak256(abi_encode(datanetId, contentHash, contributor, salt))


@external
def revealContribution(
    datanetId: uint256, contentHash: bytes32, uri: String[256], size: uint256, stake: uint256, salt: bytes32
) -> uint256:
    """
    @notice Reveals a commitment made in an earlier block and contributes it.
            A pending copy of the same hash submitted after the commitment is
            displaced (rejected, its stake returned); a slashed holder of the
            hash blocks only its own contributor.
    @param datanetId The Datanet.
    @param contentHash The sha256 of the contribution's bytes.
    @param uri Where the bytes can be fetched.
    @param size The size of the bytes.
    @param stake The OPEN (wei) to escrow; at least the Datanet's `minStake`.
    @param salt The salt of the commitment.
    @return uint256 The new contribution id.
    """
    self._check_datanet_exists(datanetId)
    assert contentHash != empty(bytes32), "DatanetRegistry: empty content hash"
    assert stake >= self._datanets[datanetId].minStake, "DatanetRegistry: stake below minimum"
    commitment: bytes32 = keccak256(abi_encode(datanetId, contentHash, msg.sender, salt))
    committed_at: uint256 = self.commitmentBlock[msg.sender][commitment]
    assert committed_at != 0, "DatanetRegistry: no such commitment"
    assert committed_at < block.number, "DatanetRegistry: reveal in a later block than the commitment"
    self.commitmentBlock[msg.sender][commitment] = 0
    precedence: uint256 = 2 * committed_at
    holder_id: uint256 = self.contributionIdOf[datanetId][contentHash]
    if holder_id != 0:
        holder: Contribution = self._contributions[holder_id]
        if holder.status == STATUS_SLASHED:
            assert holder.contributor != msg.sender, "DatanetRegistry: duplicate content"
        else:
            assert holder.status == STATUS_PENDING and self._precedence[holder_id] > precedence, "DatanetRegistry: duplicate content"
            self._contributions[holder_id].status = STATUS_REJECTED
            self._contributions[holder_id].stake = 0
            self._pay(holder.contributor, holder.stake)
            log ContributionRejected(
                contributionId=holder_id,
                datanetId=datanetId,
                curator=msg.sender,
                malicious=False,
                stakeReturned=holder.stake,
                stakeSlashed=0,
            )
            log ContributionDisplaced(contributionId=holder_id, byContributor=msg.sender)
    return self._contribute(datanetId, contentHash, uri, size, stake, precedence)


@internal
def _contribute(
    datanetId: uint256, contentHash: bytes32, uri: String[256], size: uint256, stake: uint256, precedence: uint256
) -> uint256:
    """
    @dev Records a pending contribution and pulls its stake (shared by `contribute` and
         `revealContribution`).
    @param datanetId The Datanet contributed to.
    @param contentHash The sha256 of the content.
    @param uri Where the content can be fetched.
    @param size The content's size in bytes.
    @param stake The OPEN escrowed, at least the Datanet's minimum.
    @param precedence The order that decides which of two submissions of the same content stands.
    @return The new contribution id.
    """
    assert contentHash != empty(bytes32), "DatanetRegistry: empty content hash"
    assert stake >= self._datanets[datanetId].minStake, "DatanetRegistry: stake below minimum"
    if stake > 0:
        assert extcall token.transferFrom(msg.sender, self, stake, default_return_value=True), "DatanetRegistry: token transferFrom failed"

    contribution_id: uint256 = self.contributionCount + 1
    self.contributionCount = contribution_id
    self._contributions[contribution_id] = Contribution(
        id=contribution_id,
        datanetId=datanetId,
        contributor=msg.sender,
        contentHash=contentHash,
        uri=uri,
        size=size,
        stake=stake,
        status=STATUS_PENDING,
        submittedAt=block.timestamp,
    )
    self._precedence[contribution_id] = precedence
    index: uint256 = self._datanets[datanetId].contributionCount
    self._datanetContributions[datanetId][index] = contribution_id
    self._datanets[datanetId].contributionCount = index + 1
    self.contributionIdOf[datanetId][contentHash] = contribution_id
    log ContributionSubmitted(
        contributionId=contribution_id,
        datanetId=datanetId,
        contributor=msg.sender,
        contentHash=contentHash,
        uri=uri,
        size=size,
        stake=stake,
    )
    return contribution_id


@external
def approve(contributionId: uint256):
    """
    @notice Approves a pending contribution and returns its stake
            (Datanet owner or curator only).
    @param contributionId The contribution.
    """
    c: Contribution = self._pending(contributionId)
    self._check_curator(c.datanetId)
    index: uint256 = self._datanets[c.datanetId].approvedCount
    self._approved[c.datanetId][index] = contributionId
    self._datanets[c.datanetId].approvedCount = index + 1
    self._contributions[contributionId].status = STATUS_APPROVED
    self._contributions[contributionId].stake = 0
    self._pay(c.contributor, c.stake)
    log ContributionApproved(
        contributionId=contributionId, datanetId=c.datanetId, curator=msg.sender, approvalIndex=index, stakeReturned=c.stake
    )


@external
def reject(contributionId: uint256, malicious: bool):
    """
    @notice Rejects a pending contribution (Datanet owner or curator only).
            An ordinary rejection returns the stake; a malicious one slashes it
            to the treasury and blocks the content hash in this Datanet.
    @param contributionId The contribution.
    @param malicious True to slash the stake.
    """
    c: Contribution = self._pending(contributionId)
    self._check_curator(c.datanetId)
    self._contributions[contributionId].stake = 0
    if malicious:
        self._contributions[contributionId].status = STATUS_SLASHED
        self._pay(self.treasury, c.stake)
        log ContributionRejected(
            contributionId=contributionId,
            datanetId=c.datanetId,
            curator=msg.sender,
            malicious=True,
            stakeReturned=0,
            stakeSlashed=c.stake,
        )
    else:
        self._contributions[contributionId].status = STATUS_REJECTED
        self.contributionIdOf[c.datanetId][c.contentHash] = 0
        self._pay(c.contributor, c.stake)
        log ContributionRejected(
            contributionId=contributionId,
            datanetId=c.datanetId,
            curator=msg.sender,
            malicious=False,
            stakeReturned=c.stake,
            stakeSlashed=0,
        )


@external
def withdraw(contributionId: uint256):
    """
    @notice Withdraws the caller's own pending contribution and returns its stake.
    @param contributionId The contribution.
    """
    c: Contribution = self._pending(contributionId)
    assert c.contributor == msg.sender, "DatanetRegistry: not the contributor"
    self._contributions[contributionId].status = STATUS_WITHDRAWN
    self._contributions[contributionId].stake = 0
    self.contributionIdOf[c.datanetId][c.contentHash] = 0
    self._pay(c.contributor, c.stake)
    log ContributionWithdrawn(
        contributionId=contributionId, datanetId=c.datanetId, contributor=msg.sender, stakeReturned=c.stake
    )


# ------------------------------------------------------------------ versions


@external
def publishVersion(datanetId: uint256, merkleRoot: bytes32, count: uint256, manifestURI: String[256]) -> uint256:
    """
    @notice Appends an immutable version (Datanet owner only). `merkleRoot`
            covers the content hashes of the first `count` approved
            contributions in approval order; `count` must equal the number
            approved so far and exceed the previous version's count.
    @param datanetId The Datanet.
    @param merkleRoot The Merkle root (leaf rule in the contract notice).
    @param count The number of approved contributions covered.
    @param manifestURI Where the version's manifest lives.
    @return uint256 The new version number (1-based).
    """
    self._check_datanet_owner(datanetId)
    assert merkleRoot != empty(bytes32), "DatanetRegistry: empty root"
    d: Datanet = self._datanets[datanetId]
    assert count == d.approvedCount, "DatanetRegistry: count is not the approved count"
    if d.versionCount > 0:
        assert count > self._versions[datanetId][d.versionCount].count, "DatanetRegistry: nothing new to publish"
    else:
        assert count > 0, "DatanetRegistry: nothing approved"
    version: uint256 = d.versionCount + 1
    self._datanets[datanetId].versionCount = version
    self._versions[datanetId][version] = Version(
        merkleRoot=merkleRoot, count=count, manifestURI=manifestURI, publishedAt=block.timestamp
    )
    log VersionPublished(datanetId=datanetId, version=version, merkleRoot=merkleRoot, count=count, manifestURI=manifestURI)
    return version


# --------------------------------------------------------------------- views


@external
@view
def getDatanet(datanetId: uint256) -> Datanet:
    """
    @notice Returns a Datanet record; reverts for an unknown id.
    @param datanetId The Datanet.
    @return Datanet The record.
    """
    self._check_datanet_exists(datanetId)
    return self._datanets[datanetId]


@external
@view
def getContribution(contributionId: uint256) -> Contribution:
    """
    @notice Returns a contribution record; reverts for an unknown id.
    @param contributionId The contribution.
    @return Contribution The record.
    """
    assert contributionId > 0 and contributionId <= self.contributionCount, "DatanetRegistry: unknown contribution"
    return self._contributions[contributionId]


@external
@view
def getVersion(datanetId: uint256, version: uint256) -> Version:
    """
    @notice Returns a published version; reverts for an unknown one.
    @param datanetId The Datanet.
    @param version The version number (1-based).
    @return Version The record.
    """
    assert self._version_exists(datanetId, version), "DatanetRegistry: unknown version"
    return self._versions[datanetId][version]


@external
@view
def versionExists(datanetId: uint256, version: uint256) -> bool:
    """
    @notice Tells whether a Datanet version has been published.
    @param datanetId The Datanet.
    @param version The version number (1-based).
    @return bool True when it exists.
    """
    return self._version_exists(datanetId, version)


@external
@view
def getDatanets(offset: uint256, limit: uint256) -> DynArray[Datanet, MAX_PAGE]:
    """
    @notice Pages through Datanets by id (id = offset + 1 first).
    @param offset How many to skip.
    @param limit At most this many (capped at MAX_PAGE).
    @return DynArray The page.
    """
    page: DynArray[Datanet, MAX_PAGE] = []
    total: uint256 = self.datanetCount
    for i: uint256 in range(MAX_PAGE):
        if i >= limit or offset + i >= total:
            break
        page.append(self._datanets[offset + i + 1])
    return page


@external
@view
def getContributions(datanetId: uint256, offset: uint256, limit: uint256) -> DynArray[Contribution, MAX_PAGE]:
    """
    @notice Pages through a Datanet's contributions in submission order.
    @param datanetId The Datanet.
    @param offset How many to skip.
    @param limit At most this many (capped at MAX_PAGE).
    @return DynArray The page.
    """
    self._check_datanet_exists(datanetId)
    page: DynArray[Contribution, MAX_PAGE] = []
    total: uint256 = self._datanets[datanetId].contributionCount
    for i: uint256 in range(MAX_PAGE):
        if i >= limit or offset + i >= total:
            break
        page.append(self._contributions[self._datanetContributions[datanetId][offset + i]])
    return page


@external
@view
def getApprovedHashes(datanetId: uint256, offset: uint256, limit: uint256) -> DynArray[bytes32, MAX_PAGE]:
    """
    @notice Pages through the content hashes of approved contributions in
            approval order: the leaves of every version's Merkle tree.
    @param datanetId The Datanet.
    @param offset How many to skip.
    @param limit At most this many (capped at MAX_PAGE).
    @return DynArray The page.
    """
    self._check_datanet_exists(datanetId)
    page: DynArray[bytes32, MAX_PAGE] = []
    total: uint256 = self._datanets[datanetId].approvedCount
    for i: uint256 in range(MAX_PAGE):
        if i >= limit or offset + i >= total:
            break
        page.append(self._contributions[self._approved[datanetId][offset + i]].contentHash)
    return page


@external
@view
def verifyContribution(
    datanetId: uint256, version: uint256, contentHash: bytes32, proof: DynArray[bytes32, MAX_PROOF]
) -> bool:
    """
    @notice Verifies that `contentHash` is a leaf of a published version.
    @param datanetId The Datanet.
    @param version The version number (1-based).
    @param contentHash The sha256 content hash.
    @param proof The sibling hashes from leaf to root.
    @return bool True when the proof verifies against the version's root.
    """
    if not self._version_exists(datanetId, version):
        return False
    return merkle._verify(proof, self._versions[datanetId][version].merkleRoot, self._leaf(contentHash))


@external
@pure
def leafOf(contentHash: bytes32) -> bytes32:
    """
    @notice The Merkle leaf of a content hash: keccak256(keccak256(abi_encode(h))).
    @param contentHash The sha256 content hash.
    @return bytes32 The leaf.
    """
    return self._leaf(contentHash)


# ----------------------------------------------------------------- internals


@internal
@pure
def _leaf(content_hash: bytes32) -> bytes32:
    """
    @dev The Merkle leaf of a content hash: keccak256(keccak256(abi_encode(hash))) (OpenZeppelin's
         double hashing, so a leaf is never a valid inner node).
    @param content_hash The contribution's content hash.
    @return The leaf.
    """
    return keccak256(keccak256(abi_encode(content_hash)))


@internal
@view
def _version_exists(datanet_id: uint256, version: uint256) -> bool:
    """
    @dev Whether Datanet `datanet_id` has published `version`.
    @param datanet_id The Datanet id.
    @param version The version number (1-based).
    @return True when the version exists.
    """
    return version > 0 and version <= self._datanets[datanet_id].versionCount


@internal
@view
def _check_datanet_exists(datanet_id: uint256):
    """
    @dev Reverts unless `datanet_id` is a created Datanet.
    @param datanet_id The Datanet id.
    """
    assert datanet_id > 0 and datanet_id <= self.datanetCount, "DatanetRegistry: unknown datanet"


@internal
@view
def _check_datanet_owner(datanet_id: uint256):
    """
    @dev Reverts unless the caller owns existing Datanet `datanet_id`.
    @param datanet_id The Datanet id.
    """
    self._check_datanet_exists(datanet_id)
    assert self._datanets[datanet_id].owner == msg.sender, "DatanetRegistry: caller is not the datanet owner"


@internal
@view
def _check_curator(datanet_id: uint256):
    """
    @dev Reverts unless the caller owns or curates Datanet `datanet_id`.
    @param datanet_id The Datanet id.
    """
    assert (
        self._datanets[datanet_id].owner == msg.sender or self.isCurator[datanet_id][msg.sender]
    ), "DatanetRegistry: caller is not a curator"


@internal
@view
def _pending(contribution_id: uint256) -> Contribution:
    """
    @dev Reads contribution `contribution_id`, reverting unless it exists and is pending.
    @param contribution_id The contribution id.
    @return The contribution.
    """
    assert contribution_id > 0 and contribution_id <= self.contributionCount, "DatanetRegistry: unknown contribution"
    c: Contribution = self._contributions[contribution_id]
    assert c.status == STATUS_PENDING, "DatanetRegistry: contribution is not pending"
    return c


@internal
def _pay(to: address, amount: uint256):
    """
    @dev Transfers `amount` OPEN to `to`, doing nothing for 0.
    @param to The recipient.
    @param amount The amount in wei.
    """
    if amount > 0:
        assert extcall token.transfer(to, amount, default_return_value=True), "DatanetRegistry: token transfer failed"
