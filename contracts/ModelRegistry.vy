# pragma version ~=0.4.3
"""
@title Model registry
@custom:contract-name ModelRegistry
@license AGPL-3.0-only
@author attribution-ledger contributors
@notice Records every specialised model: its owner, the hash of its base model,
        the hash of its LoRA adapter, the exact (datanetId, version) pairs it was
        trained on, its price per inference in OPEN (or per-token rates plus a flat
        fee, `setTokenRates`) and how each fee is split.

        Fee split: a protocol fee (`protocolFeeBps`, set by governance, never
        above MAX_PROTOCOL_FEE_BPS) comes off the top of every fee; the rest is
        split between the model owner, the data contributors and the Datanet
        owners by the model's three basis-point figures, which sum to 10,000.
        The contract that charges fees (InferenceMarket) applies the split.
"""

from snekmate.auth import ownable
from interfaces import IDatanetRegistry
from interfaces import IModelRegistry

initializes: ownable

implements: IModelRegistry

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    ownable.renounce_ownership,
)

# @dev Basis points in one whole.
BPS: constant(uint256) = 10_000
# @dev The hard bound on the protocol fee: 20%.
MAX_PROTOCOL_FEE_BPS: public(constant(uint256)) = 2_000
# @dev How many Datanet versions one model may name.
MAX_SOURCES: constant(uint256) = 16
# @dev Each per-token figure must fit in 85 bits (about 3.8e25 wei).
RATE_MASK: constant(uint256) = 2**85 - 1
# @dev Upper bound on the page size of `getModels`.
MAX_PAGE: constant(uint256) = 100


struct DatanetVersion:
    datanetId: uint256
    version: uint256


# @notice Emitted when `owner` registers model `modelId`: its base and adapter hashes, price, fee
#       split, the Datanet versions it was trained on and its metadata.
event ModelRegistered:
    modelId: indexed(uint256)
    owner: indexed(address)
    adapterHash: indexed(bytes32)
    baseModelHash: bytes32
    price: uint256
    split: IModelRegistry.FeeSplit
    sources: DynArray[DatanetVersion, MAX_SOURCES]
    metadataURI: String[256]

# @notice Emitted when the owner of model `modelId` changes its price per inference.
event PriceUpdated:
    modelId: indexed(uint256)
    oldPrice: uint256
    newPrice: uint256

# @notice Emitted when the owner of model `modelId` sets its per-token rates and flat fee.
event TokenRatesSet:
    modelId: indexed(uint256)
    inputPer1k: uint256
    outputPer1k: uint256
    flatFee: uint256

# @notice Emitted when the owner of model `modelId` deactivates it (no new payments).
event ModelDeactivated:
    modelId: indexed(uint256)

# @notice Emitted when governance sets the protocol fee in basis points.
event ProtocolFeeSet:
    protocolFeeBps: uint256


# @dev The registry whose versions models are trained on.
datanets: public(immutable(IDatanetRegistry))
# @dev The protocol's cut of every inference fee, in basis points.
protocolFeeBps: public(uint256)
# @dev Number of models; ids run from 1 to modelCount.
modelCount: public(uint256)

_models: HashMap[uint256, IModelRegistry.Model]
_sources: HashMap[uint256, DynArray[DatanetVersion, MAX_SOURCES]]
# @dev modelId => packed TokenRates, one slot (every payment reads it); only `_pack_rates` and
#      `_unpack_rates` touch the bits.
_rates: HashMap[uint256, uint256]


@deploy
def __init__(datanets_: IDatanetRegistry, protocol_fee_bps: uint256):
    """
    @notice Deploys the registry; the deployer becomes governance.
    @param datanets_ The DatanetRegistry models point into.
    @param protocol_fee_bps The initial protocol fee, at most MAX_PROTOCOL_FEE_BPS.
    """
    assert protocol_fee_bps <= MAX_PROTOCOL_FEE_BPS, "ModelRegistry: protocol fee above bound"
    ownable.__init__()
    datanets = datanets_
    self.protocolFeeBps = protocol_fee_bps


@external
def setProtocolFee(protocol_fee_bps: uint256):
    """
    @notice Sets the protocol fee (governance only), within the hard bound.
    @param protocol_fee_bps The new fee in basis points.
    """
    ownable._check_owner()
    assert protocol_fee_bps <= MAX_PROTOCOL_FEE_BPS, "ModelRegistry: protocol fee above bound"
    self.protocolFeeBps = protocol_fee_bps
    log ProtocolFeeSet(protocolFeeBps=protocol_fee_bps)


@external
def register(
    baseModelHash: bytes32,
    adapterHash: bytes32,
    sources: DynArray[DatanetVersion, MAX_SOURCES],
    price: uint256,
    split: IModelRegistry.FeeSplit,
    metadataURI: String[256],
) -> uint256:
    """
    @notice Registers a model owned by the caller.
    @param baseModelHash The sha256 of the base model weights.
    @param adapterHash The sha256 of the LoRA adapter (safetensors).
    @param sources The published Datanet versions it was trained on (at least one, no repeats).
    @param price The OPEN (wei) charged per inference.
    @param split The owner / contributors / Datanet-owners basis points (sum 10,000).
    @param metadataURI Where the model's manifest lives.
    @return uint256 The new model id.
    """
    assert baseModelHash != empty(bytes32), "ModelRegistry: empty base model hash"
    assert adapterHash != empty(bytes32), "ModelRegistry: empty adapter hash"
    assert len(sources) > 0, "ModelRegistry: no datanet versions"
    assert split.ownerBps + split.contributorsBps + split.datanetOwnersBps == BPS, "ModelRegistry: split must sum to 10000"
    for i: uint256 in range(MAX_SOURCES):
        if i >= len(sources):
            break
        s: DatanetVersion = sources[i]
        assert staticcall datanets.versionExists(s.datanetId, s.version), "ModelRegistry: unknown datanet version"
        for j: uint256 in range(MAX_SOURCES):
            if j >= i:
                break
            assert sources[j].datanetId != s.datanetId, "ModelRegistry: datanet named twice"

    model_id: uint256 = self.modelCount + 1
    self.modelCount = model_id
    self._models[model_id] = IModelRegistry.Model(
        id=model_id,
        owner=msg.sender,
        baseModelHash=baseModelHash,
        adapterHash=adapterHash,
        price=price,
        split=split,
        metadataURI=metadataURI,
        active=True,
        registeredAt=block.timestamp,
    )
    self._sources[model_id] = sources
    log ModelRegistered(
        modelId=model_id,
        owner=msg.sender,
        adapterHash=adapterHash,
        baseModelHash=baseModelHash,
        price=price,
        split=split,
        sources=sources,
        metadataURI=metadataURI,
    )
    return model_id


@external
def setPrice(modelId: uint256, price: uint256):
    """
    @notice Changes the price per inference (model owner only, active models).
    @param modelId The model.
    @param price The new price in wei.
    """
    self._check_model_owner(modelId)
    assert self._models[modelId].active, "ModelRegistry: model is inactive"
    old: uint256 = self._models[modelId].price
    self._models[modelId].price = price
    log PriceUpdated(modelId=modelId, oldPrice=old, newPrice=price)


@external
def setTokenRates(modelId: uint256, rates: IModelRegistry.TokenRates):
    """
    @notice Sets per-token prices (model owner only, active models): a call costs
            inputTokens * inputPer1k / 1000 + outputTokens * outputPer1k / 1000 + flatFee
            (each product rounded down; each figure below 2**85). Both rates zero returns
            the model to its flat price.
            Payments already made keep the rates they were made at (the market binds them).
    @param modelId The model.
    @param rates The rates in wei per 1,000 tokens and the flat fee in wei.
    """
    self._check_model_owner(modelId)
    assert self._models[modelId].active, "ModelRegistry: model is inactive"
    assert rates.inputPer1k <= RATE_MASK and rates.outputPer1k <= RATE_MASK and rates.flatFee <= RATE_MASK, "ModelRegistry: rate too large"
    self._rates[modelId] = self._pack_rates(rates)
    log TokenRatesSet(modelId=modelId, inputPer1k=rates.inputPer1k, outputPer1k=rates.outputPer1k, flatFee=rates.flatFee)


@external
@view
def tokenRates(modelId: uint256) -> IModelRegistry.TokenRates:
    """
    @notice Returns a model's per-token rates (all zero for a flat-priced model).
    @param modelId The model.
    @return TokenRates The rates.
    """
    self._check_model_exists(modelId)
    return self._unpack_rates(self._rates[modelId])


@external
def deactivate(modelId: uint256):
    """
    @notice Permanently stops a model from being sold (model owner or governance).
    @param modelId The model.
    """
    self._check_model_exists(modelId)
    assert msg.sender == self._models[modelId].owner or msg.sender == ownable.owner, "ModelRegistry: caller is not the model owner"
    assert self._models[modelId].active, "ModelRegistry: model is inactive"
    self._models[modelId].active = False
    log ModelDeactivated(modelId=modelId)


@external
@view
def getModel(modelId: uint256) -> IModelRegistry.Model:
    """
    @notice Returns a model record; reverts for an unknown id.
    @param modelId The model.
    @return Model The record.
    """
    self._check_model_exists(modelId)
    return self._models[modelId]


@external
@view
def getSources(modelId: uint256) -> DynArray[DatanetVersion, MAX_SOURCES]:
    """
    @notice Returns the Datanet versions a model was trained on.
    @param modelId The model.
    @return DynArray The (datanetId, version) pairs.
    """
    self._check_model_exists(modelId)
    return self._sources[modelId]


@external
@view
def getModels(offset: uint256, limit: uint256) -> DynArray[IModelRegistry.Model, MAX_PAGE]:
    """
    @notice Pages through models by id (id = offset + 1 first).
    @param offset How many to skip.
    @param limit At most this many (capped at MAX_PAGE).
    @return DynArray The page.
    """
    page: DynArray[IModelRegistry.Model, MAX_PAGE] = []
    total: uint256 = self.modelCount
    for i: uint256 in range(MAX_PAGE):
        if i >= limit or offset + i >= total:
            break
        page.append(self._models[offset + i + 1])
    return page


@internal
@view
def _check_model_exists(model_id: uint256):
    """
    @dev Reverts unless `model_id` is a registered model.
    @param model_id The model id.
    """
    assert model_id > 0 and model_id <= self.modelCount, "ModelRegistry: unknown model"


@internal
@view
def _check_model_owner(model_id: uint256):
    """
    @dev Reverts unless the caller owns registered model `model_id`.
    @param model_id The model id.
    """
    self._check_model_exists(model_id)
    assert self._models[model_id].owner == msg.sender, "ModelRegistry: caller is not the model owner"


@internal
@pure
def _pack_rates(rates: IModelRegistry.TokenRates) -> uint256:
    """
    @dev Packs per-token rates into one word: inputPer1k (bits 170..254) | outputPer1k (bits 85..169)
         | flatFee (bits 0..84). Callers keep every figure <= RATE_MASK.
    @param rates The rates.
    @return The packed word.
    """
    return (rates.inputPer1k << 170) | (rates.outputPer1k << 85) | rates.flatFee


@internal
@pure
def _unpack_rates(packed: uint256) -> IModelRegistry.TokenRates:
    """
    @dev The rates of a word built by `_pack_rates` (zero gives all-zero rates: a flat-priced model).
    @param packed The packed word.
    @return The rates.
    """
    return IModelRegistry.TokenRates(
        inputPer1k=packed >> 170, outputPer1k=(packed >> 85) & RATE_MASK, flatFee=packed & RATE_MASK
    )
