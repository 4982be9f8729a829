# pragma version ~=0.4.3
"""
@title Inference market
@custom:contract-name InferenceMarket
@license AGPL-3.0-only
@author attribution-ledger contributors
@notice Users and agents pay per inference in OPEN. A payment escrows the
        model's price in this contract and emits `InferencePaid` (the id the
        serving node checks) and `FeeSplit` (the exact per-request amounts).

        Split of a fee f (all integer wei, summing exactly to f):
          protocol    = f * protocolFeeBps / 10000            (rounded down)
          rest        = f - protocol
          owner       = rest * ownerBps / 10000                (rounded down)
          datanets    = rest * datanetOwnersBps / 10000        (rounded down)
          contributors= rest - owner - datanets                (receives the dust)

        Storage: one slot per request, the keccak256 of its `Receipt` (all of
        whose fields are in the two events), so payments stay cheap; serving and
        refunding pass the receipt back and the contract checks it.

        Proof of service: a serving operator (appointed by governance) marks
        requests served with `markServed`; only then is the fee released:
        protocol fee to the treasury, the owner's share credited to the model
        owner (withdrawn with `withdrawEarnings`), and the Datanet-owner and
        contributor shares sent to the RewardDistributor's pool. A request
        not marked served within `serviceWindow` seconds of payment can be
        refunded in full to its payer with `refund`; `markServed` holds only
        inside the window (paidAt <= t <= paidAt + serviceWindow) and `refund`
        only after it, so the two never race; a refunded request can never be
        marked served, and a served one never refunded. The oracle
        attributes only served requests.

        Per-token prices: for a model with token rates (ModelRegistry
        `setTokenRates`) a payment escrows the payer's authorized maximum
        `maxFee` (the receipt's `fee`; `FeeSplit` then shows the split of that
        maximum) and binds the rates in force (`MeteredPaid`, one `meters`
        slot). Such a request is settled with `markServedMetered`, which takes
        the actual token counts, charges
          flatFee + inputTokens*inputPer1k/1000 + outputTokens*outputPer1k/1000
        (each product rounded down; never above the maximum), applies the same
        split to the charged amount, releases it like `markServed` and sends
        the remainder back to the payer in the same transaction
        (`InferenceCharged` carries the charged amounts). `markServed` refuses
        metered requests; an unserved metered request is refunded in full.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.tokens.interfaces import IERC20Permit
from interfaces import IInferenceMarket
from interfaces import IModelRegistry
from interfaces import IRewardPool

initializes: ownable

implements: IInferenceMarket

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    ownable.renounce_ownership,
)

BPS: constant(uint256) = 10_000
MAX_BATCH: constant(uint256) = 64

STATUS_NONE: constant(uint8) = 0
STATUS_PAID: constant(uint8) = 1
STATUS_SERVED: constant(uint8) = 2
STATUS_REFUNDED: constant(uint8) = 3
# @dev What a request's commitment slot holds once it is served or refunded.
SERVED: constant(bytes32) = 0x0000000000000000000000000000000000000000000000000000000000000001
REFUNDED: constant(bytes32) = 0x0000000000000000000000000000000000000000000000000000000000000002


struct Split:
    protocol: uint256
    owner: uint256
    datanetOwners: uint256
    contributors: uint256


# @dev The terms a per-token payment was made at (bound by `meters`).
struct Meter:
    inputPer1k: uint256
    outputPer1k: uint256
    flatFee: uint256
    protocolBps: uint256
    ownerBps: uint256
    datanetOwnersBps: uint256


# @dev Everything about a paid request, rebuilt by anyone from its two events.
#      Only keccak256(abi_encode(receipt)) is stored (one slot per request).
struct Receipt:
    requestId: uint256
    payer: address
    modelId: uint256
    modelOwner: address
    fee: uint256
    paidAt: uint256
    split: Split


# @dev What the operator reports for a served per-token request.
struct MeteredService:
    receipt: Receipt
    meter: Meter
    inputTokens: uint256
    outputTokens: uint256


# @notice Emitted when `payer` pays `fee` for request `requestId` on model `modelId`; the serving
#       node checks `inputHash` against the prompt it serves.
event InferencePaid:
    requestId: indexed(uint256)
    payer: indexed(address)
    modelId: indexed(uint256)
    inputHash: bytes32
    fee: uint256
    epoch: uint256

# @notice Emitted with every payment: the exact per-request amounts of the fee's split.
event FeeSplit:
    requestId: indexed(uint256)
    modelOwner: indexed(address)
    paidAt: uint256
    protocolFee: uint256
    ownerAmount: uint256
    datanetOwnersAmount: uint256
    contributorsAmount: uint256

# @notice Emitted when a per-token request escrows `maxFee`: the rates and split it will be charged at.
event MeteredPaid:
    requestId: indexed(uint256)
    maxFee: uint256
    inputPer1k: uint256
    outputPer1k: uint256
    flatFee: uint256
    protocolBps: uint256
    ownerBps: uint256
    datanetOwnersBps: uint256

# @notice Emitted when a per-token request is served: `charged` for the counted tokens, the rest
#       `refunded` to `payer`.
event InferenceCharged:
    requestId: indexed(uint256)
    payer: indexed(address)
    charged: uint256
    refunded: uint256
    inputTokens: uint256
    outputTokens: uint256
    protocolFee: uint256
    ownerAmount: uint256
    datanetOwnersAmount: uint256
    contributorsAmount: uint256

# @notice Emitted when `operator` marks request `requestId` served and its fee is split.
event InferenceServed:
    requestId: indexed(uint256)
    operator: indexed(address)

# @notice Emitted when request `requestId`'s `fee` goes back to `payer` after the refund window.
event InferenceRefunded:
    requestId: indexed(uint256)
    payer: indexed(address)
    fee: uint256

# @notice Emitted when governance enables or disables a serving `operator`.
event OperatorSet:
    operator: indexed(address)
    enabled: bool

# @notice Emitted when governance points protocol fees to `treasury`.
event TreasurySet:
    treasury: indexed(address)

# @notice Emitted when model owner `owner` withdraws `amount` OPEN of its earnings.
event EarningsWithdrawn:
    owner: indexed(address)
    amount: uint256


token: public(immutable(IERC20))
models: public(immutable(IModelRegistry))
distributor: public(immutable(IRewardPool))
# @dev Blocks per epoch: a payment at block b belongs to epoch b // epochBlocks.
epochBlocks: public(immutable(uint256))
# @dev Seconds the operators have to serve a request before it can be refunded.
serviceWindow: public(immutable(uint256))

treasury: public(address)
isOperator: public(HashMap[address, bool])
requestCount: public(uint256)
earnings: public(HashMap[address, uint256])
# @dev requestId => keccak256 of its Receipt while paid, SERVED or REFUNDED after.
commitments: public(HashMap[uint256, bytes32])
# @dev requestId => keccak256 of its Meter while a per-token request awaits service.
meters: public(HashMap[uint256, bytes32])


@deploy
def __init__(
    token_: IERC20,
    models_: IModelRegistry,
    distributor_: IRewardPool,
    treasury_: address,
    epoch_blocks: uint256,
    service_window: uint256,
):
    """
    @notice Deploys the market; the deployer becomes governance.
    @param token_ The OPEN token.
    @param models_ The ModelRegistry (prices, splits, protocol fee).
    @param distributor_ The RewardDistributor that receives the data shares.
    @param treasury_ The receiver of protocol fees.
    @param epoch_blocks Blocks per epoch (at least 1).
    @param service_window Seconds before an unserved request becomes refundable.
    """
    assert epoch_blocks > 0, "InferenceMarket: zero epoch length"
    assert treasury_ != empty(address) and distributor_.address != empty(address), "InferenceMarket: zero address"
    ownable.__init__()
    token = token_
    models = models_
    distributor = distributor_
    epochBlocks = epoch_blocks
    serviceWindow = service_window
    self.treasury = treasury_


# ---------------------------------------------------------------- governance


@external
def setOperator(operator: address, enabled: bool):
    """
    @notice Appoints or removes a serving operator (governance only).
    @param operator The operator address.
    @param enabled True to appoint.
    """
    ownable._check_owner()
    self.isOperator[operator] = enabled
    log OperatorSet(operator=operator, enabled=enabled)


@external
def setTreasury(treasury_: address):
    """
    @notice Sets the receiver of protocol fees (governance only).
    @param treasury_ The new treasury, not the zero address.
    """
    ownable._check_owner()
    assert treasury_ != empty(address), "InferenceMarket: zero address"
    self.treasury = treasury_
    log TreasurySet(treasury=treasury_)


# ------------------------------------------------------------------ payments


@external
def payForInference(modelId: uint256, inputHash: bytes32, maxFee: uint256) -> uint256:
    """
    @notice Pays for one inference of `modelId` on the input with hash `inputHash`.
    @param modelId The model (must be active).
    @param inputHash The hash of the prompt the server will check.
    @param maxFee Reverts if the price is higher (protects against a price change).
    @return uint256 The request id the server needs.
    """
    request_id: uint256 = 0
    fee: uint256 = 0
    request_id, fee = self._record(msg.sender, modelId, inputHash, maxFee)
    assert extcall token.transferFrom(msg.sender, self, fee, default_return_value=True), "InferenceMarket: token transferFrom failed"
    return request_id


@external
def payForInferenceFor(payer: address, modelId: uint256, inputHash: bytes32, maxFee: uint256) -> (uint256, uint256):
    """
    @notice Pays for one inference with the caller's OPEN on behalf of `payer`,
            who is the request's payer of record: refunds (unserved requests,
            the unused part of a per-token maximum) go to `payer`. An agent
            vault pays this way for the agent's owner.
    @param payer The payer of record (not the zero address).
    @param modelId The model (must be active).
    @param inputHash The hash of the prompt the server will check.
    @param maxFee The highest acceptable price (the authorized maximum of a per-token model).
    @return uint256 The request id the server needs.
    @return uint256 The OPEN pulled from the caller (the price, or the maximum of a per-token model).
    """
    assert payer != empty(address), "InferenceMarket: zero address"
    request_id: uint256 = 0
    fee: uint256 = 0
    request_id, fee = self._record(payer, modelId, inputHash, maxFee)
    assert extcall token.transferFrom(msg.sender, self, fee, default_return_value=True), "InferenceMarket: token transferFrom failed"
    return request_id, fee


@external
def payForInferenceWithPermit(
    modelId: uint256, inputHash: bytes32, maxFee: uint256, deadline: uint256, v: uint8, r: bytes32, s: bytes32
) -> uint256:
    """
    @notice `payForInference` with an EIP-2612 permit for `maxFee` in the same
            transaction. A permit that was already used (e.g. front-run) is
            ignored as long as the allowance suffices.
    @param modelId The model.
    @param inputHash The prompt hash.
    @param maxFee The permit value and the highest acceptable price.
    @param deadline The permit deadline.
    @param v The signature's v.
    @param r The signature's r.
    @param s The signature's s.
    @return uint256 The request id.
    """
    permitted: bool = raw_call(
        token.address,
        abi_encode(
            msg.sender,
            self,
            maxFee,
            deadline,
            v,
            r,
            s,
            method_id=method_id("permit(address,address,uint256,uint256,uint8,bytes32,bytes32)"),
        ),
        revert_on_failure=False,
    )
    if not permitted:
        assert staticcall token.allowance(msg.sender, self) >= maxFee, "InferenceMarket: permit failed"
    request_id: uint256 = 0
    fee: uint256 = 0
    request_id, fee = self._record(msg.sender, modelId, inputHash, maxFee)
    assert extcall token.transferFrom(msg.sender, self, fee, default_return_value=True), "InferenceMarket: token transferFrom failed"
    return request_id


@external
def payForInferenceBatch(
    modelIds: DynArray[uint256, MAX_BATCH], inputHashes: DynArray[bytes32, MAX_BATCH], maxFees: DynArray[uint256, MAX_BATCH]
) -> DynArray[uint256, MAX_BATCH]:
    """
    @notice Pays for several inferences at once with a single token transfer (for agents).
    @param modelIds The models.
    @param inputHashes The prompt hashes.
    @param maxFees The highest acceptable price of each.
    @return DynArray The request ids, in order.
    """
    assert len(modelIds) == len(inputHashes) and len(modelIds) == len(maxFees), "InferenceMarket: length mismatch"
    ids: DynArray[uint256, MAX_BATCH] = []
    total: uint256 = 0
    for i: uint256 in range(MAX_BATCH):
        if i >= len(modelIds):
            break
        request_id: uint256 = 0
        fee: uint256 = 0
        request_id, fee = self._record(msg.sender, modelIds[i], inputHashes[i], maxFees[i])
        total += fee
        ids.append(request_id)
    assert extcall token.transferFrom(msg.sender, self, total, default_return_value=True), "InferenceMarket: token transferFrom failed"
    return ids


# ------------------------------------------------------------ service/refund


@external
def markServed(receipts: DynArray[Receipt, MAX_BATCH]):
    """
    @notice Records that requests were served and releases their fees
            (operators only): protocol fee to the treasury, owner shares credited,
            data shares to the RewardDistributor. Every request must still be
            inside its service window.
    @param receipts The receipts of paid, unserved, unrefunded requests (from their events).
    """
    assert self.isOperator[msg.sender], "InferenceMarket: caller is not an operator"
    to_treasury: uint256 = 0
    to_pool: uint256 = 0
    for r: Receipt in receipts:
        # only inside the service window: after it the payer may refund, and a late mark could front-run that
        assert block.timestamp <= r.paidAt + serviceWindow, "InferenceMarket: service window closed"
        self._settle(r, SERVED)
        to_treasury += r.split.protocol
        to_pool += r.split.datanetOwners + r.split.contributors
        self.earnings[r.modelOwner] += r.split.owner
        log InferenceServed(requestId=r.requestId, operator=msg.sender)
    if to_treasury > 0:
        assert extcall token.transfer(self.treasury, to_treasury, default_return_value=True), "InferenceMarket: token transfer failed"
    if to_pool > 0:
        assert extcall token.approve(distributor.address, to_pool, default_return_value=True), "InferenceMarket: token approve failed"
        extcall distributor.fund(to_pool)


@external
def markServedMetered(services: DynArray[MeteredService, MAX_BATCH]):
    """
    @notice Records that per-token requests were served with their actual token
            counts (operators only, within the service window): charges each
            its metered price, releases the charged amount like `markServed`
            and refunds the rest of the authorized maximum to its payer.
    @param services Each request's receipt, the terms it was paid at (from
           `MeteredPaid`) and its input and output token counts.
    """
    assert self.isOperator[msg.sender], "InferenceMarket: caller is not an operator"
    to_treasury: uint256 = 0
    to_pool: uint256 = 0
    for m: MeteredService in services:
        r: Receipt = m.receipt
        assert self.meters[r.requestId] == keccak256(abi_encode(m.meter)), "InferenceMarket: not a metered request"
        assert block.timestamp <= r.paidAt + serviceWindow, "InferenceMarket: service window closed"
        self.meters[r.requestId] = empty(bytes32)
        self._settle(r, SERVED)
        charged: uint256 = (
            m.meter.flatFee
            + m.inputTokens * m.meter.inputPer1k // 1000
            + m.outputTokens * m.meter.outputPer1k // 1000
        )
        assert charged <= r.fee, "InferenceMarket: charge above authorized maximum"
        split: Split = self._split(
            charged,
            IModelRegistry.FeeSplit(ownerBps=m.meter.ownerBps, contributorsBps=0, datanetOwnersBps=m.meter.datanetOwnersBps),
            m.meter.protocolBps,
        )
        to_treasury += split.protocol
        to_pool += split.datanetOwners + split.contributors
        self.earnings[r.modelOwner] += split.owner
        refunded: uint256 = r.fee - charged
        log InferenceCharged(
            requestId=r.requestId,
            payer=r.payer,
            charged=charged,
            refunded=refunded,
            inputTokens=m.inputTokens,
            outputTokens=m.outputTokens,
            protocolFee=split.protocol,
            ownerAmount=split.owner,
            datanetOwnersAmount=split.datanetOwners,
            contributorsAmount=split.contributors,
        )
        log InferenceServed(requestId=r.requestId, operator=msg.sender)
        if refunded > 0:
            assert extcall token.transfer(r.payer, refunded, default_return_value=True), "InferenceMarket: token transfer failed"
    if to_treasury > 0:
        assert extcall token.transfer(self.treasury, to_treasury, default_return_value=True), "InferenceMarket: token transfer failed"
    if to_pool > 0:
        assert extcall token.approve(distributor.address, to_pool, default_return_value=True), "InferenceMarket: token approve failed"
        extcall distributor.fund(to_pool)


@external
def refund(receipt: Receipt):
    """
    @notice Returns the whole fee of a request nobody served within `serviceWindow`.
            Anyone may call it; the OPEN goes to the payer.
    @param receipt The request's receipt (from its events).
    """
    assert block.timestamp > receipt.paidAt + serviceWindow, "InferenceMarket: service window still open"
    self._settle(receipt, REFUNDED)
    assert extcall token.transfer(receipt.payer, receipt.fee, default_return_value=True), "InferenceMarket: token transfer failed"
    log InferenceRefunded(requestId=receipt.requestId, payer=receipt.payer, fee=receipt.fee)


@external
def withdrawEarnings() -> uint256:
    """
    @notice Sends the caller (a model owner) the owner shares of its served requests.
    @return uint256 The amount sent.
    """
    amount: uint256 = self.earnings[msg.sender]
    assert amount > 0, "InferenceMarket: nothing to withdraw"
    self.earnings[msg.sender] = 0
    assert extcall token.transfer(msg.sender, amount, default_return_value=True), "InferenceMarket: token transfer failed"
    log EarningsWithdrawn(owner=msg.sender, amount=amount)
    return amount


# --------------------------------------------------------------------- views


@external
@view
def requestStatus(requestId: uint256) -> uint8:
    """
    @notice 0 unknown, 1 paid (awaiting service), 2 served, 3 refunded.
    @param requestId The request.
    @return uint8 The status.
    """
    c: bytes32 = self.commitments[requestId]
    if c == empty(bytes32):
        return STATUS_NONE
    if c == SERVED:
        return STATUS_SERVED
    if c == REFUNDED:
        return STATUS_REFUNDED
    return STATUS_PAID


@external
@view
def quote(modelId: uint256) -> Split:
    """
    @notice How a payment for `modelId` would be split right now.
    @param modelId The model.
    @return Split The amounts.
    """
    model: IModelRegistry.Model = staticcall models.getModel(modelId)
    return self._split(model.price, model.split, staticcall models.protocolFeeBps())


@external
@pure
def splitFee(fee: uint256, ownerBps: uint256, contributorsBps: uint256, datanetOwnersBps: uint256, protocolBps: uint256) -> Split:
    """
    @notice The split rule, exposed so anyone can check it.
    @param fee The fee in wei.
    @param ownerBps Model owner basis points.
    @param contributorsBps Contributors basis points.
    @param datanetOwnersBps Datanet owners basis points.
    @param protocolBps Protocol fee basis points.
    @return Split The amounts (sum to `fee`).
    """
    return self._split(
        fee,
        IModelRegistry.FeeSplit(ownerBps=ownerBps, contributorsBps=contributorsBps, datanetOwnersBps=datanetOwnersBps),
        protocolBps,
    )


# ----------------------------------------------------------------- internals


@internal
@pure
def _split(fee: uint256, split: IModelRegistry.FeeSplit, protocol_bps: uint256) -> Split:
    """
    @dev Splits `fee` into protocol, owner, Datanet-owner and contributor shares; the contributors get
         the remainder, so the shares add up to `fee` exactly.
    @param fee The fee in wei.
    @param split The model's basis-point split.
    @param protocol_bps The protocol fee in basis points.
    @return The four amounts.
    """
    protocol: uint256 = fee * protocol_bps // BPS
    rest: uint256 = fee - protocol
    owner: uint256 = rest * split.ownerBps // BPS
    datanets: uint256 = rest * split.datanetOwnersBps // BPS
    return Split(protocol=protocol, owner=owner, datanetOwners=datanets, contributors=rest - owner - datanets)


@internal
def _settle(receipt: Receipt, outcome: bytes32):
    """
    @dev Marks a request awaiting service as `outcome` (served or refunded) after checking its receipt
         against the stored commitment; a per-token request can only be served with token counts.
    @param receipt The request's receipt, as emitted at payment.
    @param outcome SERVED or REFUNDED.
    """
    assert self.commitments[receipt.requestId] == keccak256(abi_encode(receipt)), "InferenceMarket: not a request awaiting service"
    if outcome == SERVED:
        # a per-token request is only ever served by `markServedMetered` (which clears its meter first)
        assert self.meters[receipt.requestId] == empty(bytes32), "InferenceMarket: metered request needs token counts"
    self.commitments[receipt.requestId] = outcome


@internal
def _record(payer: address, model_id: uint256, input_hash: bytes32, max_fee: uint256) -> (uint256, uint256):
    """
    @dev Records a payment: reads the model's price or per-token rates, commits to the receipt and
         emits `InferencePaid` and `FeeSplit` (and `MeteredPaid` for per-token models). The caller
         moves the OPEN.
    @param payer Who pays (and is refunded).
    @param model_id The model paid for.
    @param input_hash The hash of the prompt.
    @param max_fee The most the payer accepts to pay (the escrow of a per-token request).
    @return The request id and the fee escrowed.
    """
    model: IModelRegistry.Model = staticcall models.getModel(model_id)
    assert model.active, "InferenceMarket: model is inactive"
    request_id: uint256 = self.requestCount + 1
    self.requestCount = request_id
    protocol_bps: uint256 = staticcall models.protocolFeeBps()
    fee: uint256 = model.price
    rates: IModelRegistry.TokenRates = staticcall models.tokenRates(model_id)
    if rates.inputPer1k != 0 or rates.outputPer1k != 0:
        # per-token: escrow the authorized maximum and bind the terms it will be charged at
        fee = max_fee
        assert fee >= rates.flatFee and fee > 0, "InferenceMarket: maximum below the flat fee"
        meter: Meter = Meter(
            inputPer1k=rates.inputPer1k,
            outputPer1k=rates.outputPer1k,
            flatFee=rates.flatFee,
            protocolBps=protocol_bps,
            ownerBps=model.split.ownerBps,
            datanetOwnersBps=model.split.datanetOwnersBps,
        )
        self.meters[request_id] = keccak256(abi_encode(meter))
        log MeteredPaid(
            requestId=request_id,
            maxFee=fee,
            inputPer1k=meter.inputPer1k,
            outputPer1k=meter.outputPer1k,
            flatFee=meter.flatFee,
            protocolBps=meter.protocolBps,
            ownerBps=meter.ownerBps,
            datanetOwnersBps=meter.datanetOwnersBps,
        )
    assert fee <= max_fee, "InferenceMarket: price above maxFee"
    split: Split = self._split(fee, model.split, protocol_bps)
    receipt: Receipt = Receipt(
        requestId=request_id,
        payer=payer,
        modelId=model_id,
        modelOwner=model.owner,
        fee=fee,
        paidAt=block.timestamp,
        split=split,
    )
    self.commitments[request_id] = keccak256(abi_encode(receipt))
    epoch: uint256 = block.number // epochBlocks
    log InferencePaid(requestId=request_id, payer=payer, modelId=model_id, inputHash=input_hash, fee=fee, epoch=epoch)
    log FeeSplit(
        requestId=request_id,
        modelOwner=model.owner,
        paidAt=block.timestamp,
        protocolFee=split.protocol,
        ownerAmount=split.owner,
        datanetOwnersAmount=split.datanetOwners,
        contributorsAmount=split.contributors,
    )
    return request_id, fee
