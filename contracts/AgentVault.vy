# pragma version ~=0.4.3
"""
@title Agent vault
@custom:contract-name AgentVault
@license AGPL-3.0-only
@author attribution-ledger contributors
@notice Agents that pay their own way. An owner registers an agent with a
        content-addressed agent card (name, endpoints, models), stakes OPEN to
        let it operate, deposits a budget and grants session keys; a session
        key pays for inference through this vault and every cap is enforced
        here, on-chain.

        Session keys (after ERC-7715 / ERC-4337 session keys): each key belongs
        to one agent, for good (a revoked key is never granted again), and has
          - a per-period cap: at most `periodCap` per `periodLength` seconds
            (periods are aligned to `block.timestamp // periodLength`);
          - a total cap over its whole life;
          - an expiry (exclusive);
          - an allow-list of model ids;
          - a maximum price per call.
        A key pays directly (`pay`, the key sends the transaction) or through a
        server with a signed EIP-712 `Payment` authorization
        (`payWithAuthorization`, the x402 path): the authorization names the
        server that may submit it (so nobody can front-run it), a deadline and
        a nonce (used once). Every payment goes to the InferenceMarket with the
        agent's owner as payer of record, so refunds (unserved requests, the
        unused part of a per-token maximum) go to the owner, not back here.
        What a call costs the budget is what the market pulled.

        Stake: an agent operates (its keys can pay) only while its stake is at
        least `minStake`. Unstaking moves stake into `unstaking` and waits
        `unstakeCooldown` seconds; stake and unstaking stake stay slashable and
        unstaking stake cannot be withdrawn while a governance slash is pending.

        Slashing (after ERC-8004 validation and Olas staking): a validator set
        (n addresses, threshold m, managed by governance; the config digest
        binds chain id, this contract, the config version, the validators and
        m) posts `Validation(configDigest, agentId, round, score, workHash)`
        reports signed by exactly m distinct validators in ascending address
        order (low-s only); rounds strictly increase per agent. A score
        (0..100) below `scoreThreshold` slashes `slashBps`/10,000 of the agent's
        stake (stake first, then unstaking stake) to the treasury. Governance
        can also slash any amount, but only `slashDelay` seconds after
        proposing it (`proposeSlash` / `executeSlash` / `cancelSlash`).

        Accounting: the vault's OPEN is exactly the sum over agents of
        budget + stake + unstaking stake (deposits minus spends, withdrawals
        and slashes).
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator as eip712
from interfaces import IInferenceMarket

initializes: ownable
initializes: eip712

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    ownable.renounce_ownership,
    eip712.eip712Domain,
)


BPS: constant(uint256) = 10_000
MAX_SCORE: constant(uint256) = 100
MAX_MODELS: constant(uint256) = 32
MAX_VALIDATORS: constant(uint256) = 16
MASK40: constant(uint256) = 2**40 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK128: constant(uint256) = 2**128 - 1
MASK32: constant(uint256) = 2**32 - 1

PAYMENT_TYPEHASH: constant(bytes32) = keccak256(
    "Payment(address sessionKey,address server,uint256 modelId,bytes32 inputHash,uint256 maxFee,uint256 nonce,uint256 deadline)"
)
VALIDATION_TYPEHASH: constant(bytes32) = keccak256(
    "Validation(bytes32 configDigest,uint256 agentId,uint64 round,uint256 score,bytes32 workHash)"
)


struct Signature:
    v: uint8
    r: bytes32
    s: bytes32


# @dev A session key's signed authorization to pay one call (the x402 PAYMENT-SIGNATURE payload).
struct Payment:
    sessionKey: address
    server: address
    modelId: uint256
    inputHash: bytes32
    maxFee: uint256
    nonce: uint256
    deadline: uint256


# @dev A session key as `sessionKey` returns it (stored packed in three slots).
struct SessionKey:
    agentId: uint256
    maxPricePerCall: uint256
    expiry: uint256
    periodLength: uint256
    periodCap: uint256
    totalCap: uint256
    revoked: bool
    totalSpent: uint256
    periodSpent: uint256
    period: uint256


struct Agent:
    owner: address
    cardURI: String[256]
    registeredAt: uint256


# @notice Emitted when `owner` registers agent `agentId` with its agent card at `cardURI`.
event AgentRegistered:
    agentId: indexed(uint256)
    owner: indexed(address)
    cardURI: String[256]

# @notice Emitted when the owner of agent `agentId` points its card to `cardURI`.
event AgentCardSet:
    agentId: indexed(uint256)
    cardURI: String[256]

# @notice Emitted when `amount` OPEN is staked on agent `agentId`; `stake` is its new stake.
event Staked:
    agentId: indexed(uint256)
    amount: uint256
    stake: uint256

# @notice Emitted when `amount` of agent `agentId`'s stake starts its cooldown, withdrawable at `availableAt`.
event UnstakeRequested:
    agentId: indexed(uint256)
    amount: uint256
    availableAt: uint256

# @notice Emitted when `amount` of agent `agentId`'s cooled-down stake is paid to `to`.
event StakeWithdrawn:
    agentId: indexed(uint256)
    to: indexed(address)
    amount: uint256

# @notice Emitted when `sender` adds `amount` OPEN to agent `agentId`'s spending budget.
event Deposited:
    agentId: indexed(uint256)
    sender: indexed(address)
    amount: uint256

# @notice Emitted when `amount` OPEN of agent `agentId`'s budget is paid back to `to`.
event Withdrawn:
    agentId: indexed(uint256)
    to: indexed(address)
    amount: uint256

# @notice Emitted when agent `agentId` grants session key `key` with its price, time and spending limits
#       and the models it may pay for.
event SessionKeyGranted:
    agentId: indexed(uint256)
    key: indexed(address)
    maxPricePerCall: uint256
    expiry: uint256
    periodLength: uint256
    periodCap: uint256
    totalCap: uint256
    models: DynArray[uint256, MAX_MODELS]

# @notice Emitted when agent `agentId` revokes session key `key`.
event SessionKeyRevoked:
    agentId: indexed(uint256)
    key: indexed(address)

# @notice Emitted when session key `key` of agent `agentId` pays `fee` for request `requestId` on model
#       `modelId`; `server` sent the payment.
event SessionPaid:
    agentId: indexed(uint256)
    key: indexed(address)
    requestId: indexed(uint256)
    modelId: uint256
    fee: uint256
    server: address

# @notice Emitted when the validator quorum reports `score` for agent `agentId` in `round`;
#       `slashed` is the OPEN taken at once (0 when the score passed).
event ValidationReported:
    agentId: indexed(uint256)
    round: uint64
    score: uint256
    workHash: bytes32
    slashed: uint256

# @notice Emitted when governance proposes to slash `amount` of agent `agentId`'s stake, executable
#       at `executableAt`.
event SlashProposed:
    agentId: indexed(uint256)
    amount: uint256
    executableAt: uint256
    reason: String[256]

# @notice Emitted when governance cancels the pending slash of agent `agentId`.
event SlashCancelled:
    agentId: indexed(uint256)

# @notice Emitted when `amount` OPEN of agent `agentId`'s stake goes to the treasury, by the validators
#       or by governance.
event Slashed:
    agentId: indexed(uint256)
    amount: uint256
    byValidators: bool

# @notice Emitted when the validator set changes; `configDigest` binds chain, contract, version,
#       validators and threshold.
event ValidatorConfigSet:
    configVersion: indexed(uint256)
    configDigest: bytes32
    validators: DynArray[address, MAX_VALIDATORS]
    threshold: uint256

# @notice Emitted when governance sets the staking, cooldown and slashing parameters.
event ParametersSet:
    minStake: uint256
    unstakeCooldown: uint256
    slashDelay: uint256
    scoreThreshold: uint256
    slashBps: uint256

# @notice Emitted when governance points slashed stakes to `treasury`.
event TreasurySet:
    treasury: indexed(address)


token: public(immutable(IERC20))
market: public(immutable(IInferenceMarket))

treasury: public(address)
# @dev The stake an agent needs for its keys to pay.
minStake: public(uint256)
# @dev Seconds between `requestUnstake` and `withdrawStake`.
unstakeCooldown: public(uint256)
# @dev Seconds between `proposeSlash` and `executeSlash`.
slashDelay: public(uint256)
# @dev A validation score below this (0..100) slashes `slashBps` of the stake.
scoreThreshold: public(uint256)
# @dev The fraction of the stake a failed validation slashes, in basis points.
slashBps: public(uint256)

agentCount: public(uint256)
_agents: HashMap[uint256, Agent]
# @dev Unspent budget per agent.
budgetOf: public(HashMap[uint256, uint256])
stakeOf: public(HashMap[uint256, uint256])
unstakingOf: public(HashMap[uint256, uint256])
unstakeAt: public(HashMap[uint256, uint256])
pendingSlash: public(HashMap[uint256, uint256])
pendingSlashAt: public(HashMap[uint256, uint256])
lastRound: public(HashMap[uint256, uint64])

# @dev Three packed words per session key; only the `_key_*`, `_caps_*` and `_spent_*` helpers at the
#      end of this file touch their bits.
# @dev key => maxPrice(96) << 160 | agentId(40) << 120 | expiry(40) << 80 | periodLength(40) << 40 | revoked
_keyConfig: HashMap[address, uint256]
# @dev key => periodCap << 128 | totalCap
_keyCaps: HashMap[address, uint256]
# @dev key => totalSpent << 128 | periodSpent(96) << 32 | period(32)
_keySpent: HashMap[address, uint256]
allowedModel: public(HashMap[address, HashMap[uint256, bool]])
usedNonce: public(HashMap[address, HashMap[uint256, bool]])

validators: public(DynArray[address, MAX_VALIDATORS])
isValidator: public(HashMap[address, bool])
validatorThreshold: public(uint256)
configVersion: public(uint256)
configDigest: public(bytes32)


@deploy
def __init__(
    token_: IERC20,
    market_: IInferenceMarket,
    treasury_: address,
    min_stake: uint256,
    unstake_cooldown: uint256,
    slash_delay: uint256,
    validators_: DynArray[address, MAX_VALIDATORS],
    threshold_: uint256,
):
    """
    @notice Deploys the vault; the deployer becomes governance.
    @param token_ The OPEN token.
    @param market_ The InferenceMarket the keys pay.
    @param treasury_ The receiver of slashed stake.
    @param min_stake The stake an agent needs to operate.
    @param unstake_cooldown Seconds an unstake waits (at least `slash_delay`).
    @param slash_delay Seconds a governance slash waits.
    @param validators_ The validator set (distinct, non-zero).
    @param threshold_ Signatures a validation report needs (1..n).
    """
    assert treasury_ != empty(address), "AgentVault: zero address"
    ownable.__init__()
    eip712.__init__("AgentVault", "1")
    token = token_
    market = market_
    self.treasury = treasury_
    self._set_parameters(min_stake, unstake_cooldown, slash_delay, 50, 1_000)
    self._set_validators(validators_, threshold_)
    # the market pulls each call's fee from here
    assert extcall token_.approve(market_.address, max_value(uint256), default_return_value=True), "AgentVault: token approve failed"


# ---------------------------------------------------------------- governance


@external
def setParameters(
    min_stake: uint256, unstake_cooldown: uint256, slash_delay: uint256, score_threshold: uint256, slash_bps: uint256
):
    """
    @notice Sets the staking and slashing parameters (governance only).
    @param min_stake The stake an agent needs to operate.
    @param unstake_cooldown Seconds an unstake waits (at least `slash_delay`).
    @param slash_delay Seconds a governance slash waits.
    @param score_threshold Validation scores below this slash (at most 100).
    @param slash_bps The fraction of stake a failed validation slashes (at most 10,000).
    """
    ownable._check_owner()
    self._set_parameters(min_stake, unstake_cooldown, slash_delay, score_threshold, slash_bps)


@external
def setValidators(validators_: DynArray[address, MAX_VALIDATORS], threshold_: uint256):
    """
    @notice Replaces the validator set (governance only); old signatures die with the old digest.
    @param validators_ The new set (distinct, non-zero).
    @param threshold_ Signatures a report needs (1..n).
    """
    ownable._check_owner()
    self._set_validators(validators_, threshold_)


@external
def setTreasury(treasury_: address):
    """
    @notice Sets the receiver of slashed stake (governance only).
    @param treasury_ The new treasury, not the zero address.
    """
    ownable._check_owner()
    assert treasury_ != empty(address), "AgentVault: zero address"
    self.treasury = treasury_
    log TreasurySet(treasury=treasury_)


@external
def proposeSlash(agentId: uint256, amount: uint256, reason: String[256]):
    """
    @notice Proposes slashing `amount` of an agent's stake (governance only);
            executable after `slashDelay`. Replaces an earlier proposal.
    @param agentId The agent.
    @param amount The OPEN to slash (capped at the stake when executed).
    @param reason Why (for the record).
    """
    ownable._check_owner()
    self._check_agent(agentId)
    assert amount > 0, "AgentVault: zero amount"
    self.pendingSlash[agentId] = amount
    executable_at: uint256 = block.timestamp + self.slashDelay
    self.pendingSlashAt[agentId] = executable_at
    log SlashProposed(agentId=agentId, amount=amount, executableAt=executable_at, reason=reason)


@external
def cancelSlash(agentId: uint256):
    """
    @notice Cancels a pending governance slash (governance only).
    @param agentId The agent.
    """
    ownable._check_owner()
    assert self.pendingSlash[agentId] > 0, "AgentVault: no pending slash"
    self.pendingSlash[agentId] = 0
    self.pendingSlashAt[agentId] = 0
    log SlashCancelled(agentId=agentId)


@external
def executeSlash(agentId: uint256) -> uint256:
    """
    @notice Executes a pending governance slash once its delay has passed (governance only).
    @param agentId The agent.
    @return uint256 The OPEN sent to the treasury.
    """
    ownable._check_owner()
    amount: uint256 = self.pendingSlash[agentId]
    assert amount > 0, "AgentVault: no pending slash"
    assert block.timestamp >= self.pendingSlashAt[agentId], "AgentVault: slash delay not over"
    self.pendingSlash[agentId] = 0
    self.pendingSlashAt[agentId] = 0
    return self._slash(agentId, amount, False)


# -------------------------------------------------------------------- agents


@external
def register(cardURI: String[256]) -> uint256:
    """
    @notice Registers an agent owned by the caller.
    @param cardURI The content-addressed agent card (e.g. sha256://<hash>).
    @return uint256 The new agent id.
    """
    assert len(cardURI) > 0, "AgentVault: empty agent card"
    agent_id: uint256 = self.agentCount + 1
    assert agent_id <= MASK40, "AgentVault: too many agents"
    self.agentCount = agent_id
    self._agents[agent_id] = Agent(owner=msg.sender, cardURI=cardURI, registeredAt=block.timestamp)
    log AgentRegistered(agentId=agent_id, owner=msg.sender, cardURI=cardURI)
    return agent_id


@external
def setCard(agentId: uint256, cardURI: String[256]):
    """
    @notice Points an agent at a new agent card (agent owner only).
    @param agentId The agent.
    @param cardURI The new card URI.
    """
    self._check_agent_owner(agentId)
    assert len(cardURI) > 0, "AgentVault: empty agent card"
    self._agents[agentId].cardURI = cardURI
    log AgentCardSet(agentId=agentId, cardURI=cardURI)


@external
def stake(agentId: uint256, amount: uint256):
    """
    @notice Adds the caller's OPEN to an agent's stake (agent owner only).
    @param agentId The agent.
    @param amount The OPEN (approved to this vault).
    """
    self._check_agent_owner(agentId)
    assert amount > 0, "AgentVault: zero amount"
    self.stakeOf[agentId] += amount
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True), "AgentVault: token transferFrom failed"
    log Staked(agentId=agentId, amount=amount, stake=self.stakeOf[agentId])


@external
def requestUnstake(agentId: uint256, amount: uint256):
    """
    @notice Starts the cooldown for `amount` of stake (agent owner only); it stays
            slashable until withdrawn. Restarts the cooldown of anything already unstaking.
    @param agentId The agent.
    @param amount The OPEN to unstake.
    """
    self._check_agent_owner(agentId)
    assert amount > 0 and amount <= self.stakeOf[agentId], "AgentVault: amount above stake"
    self.stakeOf[agentId] -= amount
    self.unstakingOf[agentId] += amount
    available_at: uint256 = block.timestamp + self.unstakeCooldown
    self.unstakeAt[agentId] = available_at
    log UnstakeRequested(agentId=agentId, amount=amount, availableAt=available_at)


@external
@nonreentrant
def withdrawStake(agentId: uint256) -> uint256:
    """
    @notice Sends the agent's unstaked OPEN to its owner after the cooldown, unless a slash is pending.
    @param agentId The agent.
    @return uint256 The amount sent.
    """
    owner: address = self._check_agent_owner(agentId)
    amount: uint256 = self.unstakingOf[agentId]
    assert amount > 0, "AgentVault: nothing unstaking"
    assert block.timestamp >= self.unstakeAt[agentId], "AgentVault: unstake cooldown not over"
    assert self.pendingSlash[agentId] == 0, "AgentVault: slash pending"
    self.unstakingOf[agentId] = 0
    assert extcall token.transfer(owner, amount, default_return_value=True), "AgentVault: token transfer failed"
    log StakeWithdrawn(agentId=agentId, to=owner, amount=amount)
    return amount


@external
def deposit(agentId: uint256, amount: uint256):
    """
    @notice Adds the caller's OPEN to an agent's budget (anyone may fund an agent).
    @param agentId The agent.
    @param amount The OPEN (approved to this vault).
    """
    self._check_agent(agentId)
    assert amount > 0, "AgentVault: zero amount"
    self.budgetOf[agentId] += amount
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True), "AgentVault: token transferFrom failed"
    log Deposited(agentId=agentId, sender=msg.sender, amount=amount)


@external
@nonreentrant
def withdraw(agentId: uint256, amount: uint256):
    """
    @notice Sends unspent budget to the agent's owner (agent owner only).
    @param agentId The agent.
    @param amount The OPEN to withdraw (at most the budget).
    """
    owner: address = self._check_agent_owner(agentId)
    assert amount > 0 and amount <= self.budgetOf[agentId], "AgentVault: amount above budget"
    self.budgetOf[agentId] -= amount
    assert extcall token.transfer(owner, amount, default_return_value=True), "AgentVault: token transfer failed"
    log Withdrawn(agentId=agentId, to=owner, amount=amount)


@external
def grant(
    agentId: uint256,
    key: address,
    maxPricePerCall: uint256,
    expiry: uint256,
    periodLength: uint256,
    periodCap: uint256,
    totalCap: uint256,
    models: DynArray[uint256, MAX_MODELS],
):
    """
    @notice Grants a new session key (agent owner only). A key is granted once, ever.
    @param agentId The agent.
    @param key The session key's address.
    @param maxPricePerCall The most one call may cost (< 2**96).
    @param expiry The timestamp from which the key is dead (future, < 2**40).
    @param periodLength Seconds per budget period (1 .. 2**40 - 1).
    @param periodCap The most the key may spend per period (< 2**96).
    @param totalCap The most the key may ever spend (< 2**128).
    @param models The model ids the key may pay for (at least one).
    """
    self._check_agent_owner(agentId)
    assert key != empty(address), "AgentVault: zero address"
    assert self._keyConfig[key] == 0, "AgentVault: session key already granted"
    assert expiry > block.timestamp and expiry <= MASK40, "AgentVault: bad expiry"
    assert periodLength > 0 and periodLength <= MASK40, "AgentVault: bad period length"
    assert maxPricePerCall <= MASK96 and periodCap <= MASK96 and totalCap <= MASK128, "AgentVault: cap too large"
    assert len(models) > 0, "AgentVault: empty model allow-list"
    self._keyConfig[key] = self._key_config(maxPricePerCall, agentId, expiry, periodLength)
    self._keyCaps[key] = self._caps(periodCap, totalCap)
    for model_id: uint256 in models:
        self.allowedModel[key][model_id] = True
    log SessionKeyGranted(
        agentId=agentId,
        key=key,
        maxPricePerCall=maxPricePerCall,
        expiry=expiry,
        periodLength=periodLength,
        periodCap=periodCap,
        totalCap=totalCap,
        models=models,
    )


@external
def revoke(key: address):
    """
    @notice Revokes a session key for good (its agent's owner only).
    @param key The session key.
    """
    config: uint256 = self._keyConfig[key]
    agent_id: uint256 = self._key_agent_id(config)
    assert agent_id != 0, "AgentVault: unknown session key"
    self._check_agent_owner(agent_id)
    assert not self._key_revoked(config), "AgentVault: session key revoked"
    self._keyConfig[key] = self._key_with_revoked(config)
    log SessionKeyRevoked(agentId=agent_id, key=key)


# ------------------------------------------------------------------ payments


@external
@nonreentrant
def pay(modelId: uint256, inputHash: bytes32, maxFee: uint256) -> uint256:
    """
    @notice Pays one inference from the budget of the caller's agent (the caller is a session key).
    @param modelId The model (on the key's allow-list).
    @param inputHash The prompt hash the server checks.
    @param maxFee The most this call may cost (at most the key's maximum per call).
    @return uint256 The market's request id.
    """
    return self._pay(msg.sender, modelId, inputHash, maxFee)


@external
@nonreentrant
def payWithAuthorization(payment: Payment, signature: Signature) -> uint256:
    """
    @notice Pays one inference on a session key's signed authorization; only the
            server it names may submit it, before its deadline, once.
    @param payment The authorization (EIP-712 `Payment`, domain AgentVault/1, this chain and contract).
    @param signature The session key's signature (low-s, v 27/28).
    @return uint256 The market's request id.
    """
    assert msg.sender == payment.server, "AgentVault: authorization is for another server"
    assert block.timestamp <= payment.deadline, "AgentVault: authorization expired"
    assert not self.usedNonce[payment.sessionKey][payment.nonce], "AgentVault: authorization already used"
    signer: address = ecdsa._recover_vrs(
        self._payment_digest(payment),
        convert(signature.v, uint256),
        convert(signature.r, uint256),
        convert(signature.s, uint256),
    )
    assert signer == payment.sessionKey, "AgentVault: bad authorization signature"
    self.usedNonce[payment.sessionKey][payment.nonce] = True
    return self._pay(payment.sessionKey, payment.modelId, payment.inputHash, payment.maxFee)


# ------------------------------------------------------------------ slashing


@external
def submitValidation(
    agentId: uint256, round: uint64, score: uint256, workHash: bytes32, signatures: DynArray[Signature, MAX_VALIDATORS]
) -> uint256:
    """
    @notice Records a validation of an agent's work signed by exactly `validatorThreshold`
            distinct validators (ascending addresses); a score below `scoreThreshold`
            slashes `slashBps` of the agent's stake to the treasury. Anyone may submit.
    @param agentId The agent.
    @param round Must exceed the agent's `lastRound`.
    @param score The validation score, 0..100.
    @param workHash What was validated (e.g. the hash of a served-record set).
    @param signatures The validators' EIP-712 signatures over `Validation`.
    @return uint256 The OPEN slashed (0 when the score passes).
    """
    self._check_agent(agentId)
    assert round > self.lastRound[agentId], "AgentVault: round not increasing"
    assert score <= MAX_SCORE, "AgentVault: score above 100"
    assert len(signatures) == self.validatorThreshold, "AgentVault: wrong number of signatures"
    digest: bytes32 = self._validation_digest(agentId, round, score, workHash)
    previous: address = empty(address)
    for sig: Signature in signatures:
        signer: address = ecdsa._recover_vrs(digest, convert(sig.v, uint256), convert(sig.r, uint256), convert(sig.s, uint256))
        assert convert(signer, uint160) > convert(previous, uint160), "AgentVault: signers not ascending"
        assert self.isValidator[signer], "AgentVault: not a validator"
        previous = signer
    self.lastRound[agentId] = round
    slashed: uint256 = 0
    if score < self.scoreThreshold:
        slashed = self._slash(agentId, (self.stakeOf[agentId] + self.unstakingOf[agentId]) * self.slashBps // BPS, True)
    log ValidationReported(agentId=agentId, round=round, score=score, workHash=workHash, slashed=slashed)
    return slashed


# --------------------------------------------------------------------- views


@external
@view
def getAgent(agentId: uint256) -> Agent:
    """
    @notice Returns an agent's owner, card and registration time; reverts for an unknown id.
    @param agentId The agent.
    @return Agent The record.
    """
    self._check_agent(agentId)
    return self._agents[agentId]


@external
@view
def sessionKey(key: address) -> SessionKey:
    """
    @notice Returns a session key's caps and spending (all zero for an unknown key);
            `periodSpent` is what was spent in the current period.
    @param key The session key.
    @return SessionKey The unpacked record.
    """
    config: uint256 = self._keyConfig[key]
    caps: uint256 = self._keyCaps[key]
    spent: uint256 = self._keySpent[key]
    period_length: uint256 = self._key_period_length(config)
    period: uint256 = 0
    period_spent: uint256 = 0
    if period_length > 0:
        period = block.timestamp // period_length
        if self._spent_period(spent) == period & MASK32:
            period_spent = self._spent_in_period(spent)
    return SessionKey(
        agentId=self._key_agent_id(config),
        maxPricePerCall=self._key_max_price(config),
        expiry=self._key_expiry(config),
        periodLength=period_length,
        periodCap=self._caps_period(caps),
        totalCap=self._caps_total(caps),
        revoked=self._key_revoked(config),
        totalSpent=self._spent_total(spent),
        periodSpent=period_spent,
        period=period,
    )


@external
@view
def paymentDigest(payment: Payment) -> bytes32:
    """
    @notice The EIP-712 digest a session key signs to authorize `payment`.
    @param payment The authorization.
    @return bytes32 The digest.
    """
    return self._payment_digest(payment)


@external
@view
def validationDigest(agentId: uint256, round: uint64, score: uint256, workHash: bytes32) -> bytes32:
    """
    @notice The EIP-712 digest validators sign for a validation report.
    @param agentId The agent.
    @param round The round.
    @param score The score.
    @param workHash The validated work.
    @return bytes32 The digest.
    """
    return self._validation_digest(agentId, round, score, workHash)


@external
@view
def getValidators() -> DynArray[address, MAX_VALIDATORS]:
    """
    @notice Returns the validator set.
    @return DynArray The validators.
    """
    return self.validators


# ----------------------------------------------------------------- internals


@internal
def _pay(key: address, model_id: uint256, input_hash: bytes32, max_fee: uint256) -> uint256:
    """
    @dev Pays for one inference from agent budget through session key `key`, after checking the key's
         expiry, price, model list, period and total caps and the agent's stake.
    @param key The session key paying.
    @param model_id The model paid for.
    @param input_hash The hash of the prompt.
    @param max_fee The most the key accepts to pay.
    @return The InferenceMarket request id.
    """
    config: uint256 = self._keyConfig[key]
    agent_id: uint256 = self._key_agent_id(config)
    assert agent_id != 0, "AgentVault: unknown session key"
    assert not self._key_revoked(config), "AgentVault: session key revoked"
    assert block.timestamp < self._key_expiry(config), "AgentVault: session key expired"
    assert max_fee <= self._key_max_price(config), "AgentVault: price above the key's maximum per call"
    assert self.allowedModel[key][model_id], "AgentVault: model not on the key's allow-list"
    assert self.stakeOf[agent_id] >= self.minStake, "AgentVault: agent stake below minimum"
    owner: address = self._agents[agent_id].owner

    request_id: uint256 = 0
    fee: uint256 = 0
    request_id, fee = extcall market.payForInferenceFor(owner, model_id, input_hash, max_fee)

    budget: uint256 = self.budgetOf[agent_id]
    assert fee <= budget, "AgentVault: budget exhausted"
    self.budgetOf[agent_id] = budget - fee
    caps: uint256 = self._keyCaps[key]
    spent: uint256 = self._keySpent[key]
    total: uint256 = self._spent_total(spent) + fee
    assert total <= self._caps_total(caps), "AgentVault: total cap exceeded"
    period: uint256 = (block.timestamp // self._key_period_length(config)) & MASK32
    period_spent: uint256 = fee
    if self._spent_period(spent) == period:
        period_spent += self._spent_in_period(spent)
    assert period_spent <= self._caps_period(caps), "AgentVault: period cap exceeded"
    self._keySpent[key] = self._spent(total, period_spent, period)
    log SessionPaid(agentId=agent_id, key=key, requestId=request_id, modelId=model_id, fee=fee, server=msg.sender)
    return request_id


@internal
def _slash(agent_id: uint256, amount: uint256, by_validators: bool) -> uint256:
    """
    @dev Takes up to `amount` from the agent's stake, then from its unstaking balance, and sends it to
         the treasury.
    @param agent_id The agent slashed.
    @param amount The most to take.
    @param by_validators Whether the validator quorum (not governance) slashed.
    @return The OPEN actually taken.
    """
    staked: uint256 = self.stakeOf[agent_id]
    unstaking: uint256 = self.unstakingOf[agent_id]
    taken: uint256 = min(amount, staked + unstaking)
    from_stake: uint256 = min(taken, staked)
    self.stakeOf[agent_id] = staked - from_stake
    self.unstakingOf[agent_id] = unstaking - (taken - from_stake)
    if taken > 0:
        assert extcall token.transfer(self.treasury, taken, default_return_value=True), "AgentVault: token transfer failed"
    log Slashed(agentId=agent_id, amount=taken, byValidators=by_validators)
    return taken


@internal
@view
def _payment_digest(payment: Payment) -> bytes32:
    """
    @dev The EIP-712 digest a session key signs for `payWithAuthorization`.
    @param payment The payment authorised.
    @return The typed-data digest.
    """
    return eip712._hash_typed_data_v4(
        keccak256(
            abi_encode(
                PAYMENT_TYPEHASH,
                payment.sessionKey,
                payment.server,
                payment.modelId,
                payment.inputHash,
                payment.maxFee,
                payment.nonce,
                payment.deadline,
            )
        )
    )


@internal
@view
def _validation_digest(agent_id: uint256, round: uint64, score: uint256, work_hash: bytes32) -> bytes32:
    """
    @dev The EIP-712 digest each validator signs for `submitValidation`, bound to the current
         validator config digest.
    @param agent_id The agent validated.
    @param round The validation round.
    @param score The score given.
    @param work_hash The hash of the work validated.
    @return The typed-data digest.
    """
    return eip712._hash_typed_data_v4(
        keccak256(abi_encode(VALIDATION_TYPEHASH, self.configDigest, agent_id, round, score, work_hash))
    )


@internal
@view
def _check_agent(agent_id: uint256):
    """
    @dev Reverts unless `agent_id` is a registered agent.
    @param agent_id The agent id.
    """
    assert agent_id > 0 and agent_id <= self.agentCount, "AgentVault: unknown agent"


@internal
@view
def _check_agent_owner(agent_id: uint256) -> address:
    """
    @dev Reverts unless the caller owns registered agent `agent_id`.
    @param agent_id The agent id.
    @return The agent's owner (the caller).
    """
    self._check_agent(agent_id)
    owner: address = self._agents[agent_id].owner
    assert owner == msg.sender, "AgentVault: caller is not the agent owner"
    return owner


@internal
def _set_parameters(
    min_stake: uint256, unstake_cooldown: uint256, slash_delay: uint256, score_threshold: uint256, slash_bps: uint256
):
    """
    @dev Checks and stores the staking and slashing parameters (the cooldown must outlast the slash
         delay, so a slash can always land before the stake leaves).
    @param min_stake The least stake an agent needs to pay.
    @param unstake_cooldown Seconds between an unstake request and its withdrawal.
    @param slash_delay Seconds between a governance slash proposal and its execution.
    @param score_threshold Validation scores below this are slashed.
    @param slash_bps The share of stake a failed validation slashes, in basis points.
    """
    assert unstake_cooldown >= slash_delay, "AgentVault: cooldown shorter than slash delay"
    assert score_threshold <= MAX_SCORE and slash_bps <= BPS, "AgentVault: bad slashing parameters"
    self.minStake = min_stake
    self.unstakeCooldown = unstake_cooldown
    self.slashDelay = slash_delay
    self.scoreThreshold = score_threshold
    self.slashBps = slash_bps
    log ParametersSet(
        minStake=min_stake,
        unstakeCooldown=unstake_cooldown,
        slashDelay=slash_delay,
        scoreThreshold=score_threshold,
        slashBps=slash_bps,
    )


@internal
def _set_validators(validators_: DynArray[address, MAX_VALIDATORS], threshold_: uint256):
    """
    @dev Replaces the validator set and bumps the config version and digest (old signatures die).
    @param validators_ The new validators, distinct and non-zero.
    @param threshold_ How many of them must sign a validation.
    """
    assert threshold_ > 0 and threshold_ <= len(validators_), "AgentVault: bad threshold"
    for old: address in self.validators:
        self.isValidator[old] = False
    for v: address in validators_:
        assert v != empty(address), "AgentVault: zero address"
        assert not self.isValidator[v], "AgentVault: duplicate validator"
        self.isValidator[v] = True
    self.validators = validators_
    self.validatorThreshold = threshold_
    version: uint256 = self.configVersion + 1
    self.configVersion = version
    digest: bytes32 = keccak256(abi_encode(chain.id, self, version, validators_, threshold_))
    self.configDigest = digest
    log ValidatorConfigSet(configVersion=version, configDigest=digest, validators=validators_, threshold=threshold_)


# ------------------------------------------------------- packed session-key words


@internal
@pure
def _key_config(max_price: uint256, agent_id: uint256, expiry: uint256, period_length: uint256) -> uint256:
    """
    @dev Packs a session key's config word: maxPrice (bits 160..255) | agentId (120..159) | expiry (80..119)
         | periodLength (40..79) | revoked (bit 0, clear). Callers keep max_price < 2**96 and the rest < 2**40.
    @param max_price The most one call may cost.
    @param agent_id The agent the key spends for.
    @param expiry The timestamp from which the key is dead.
    @param period_length Seconds per budget period.
    @return The packed word.
    """
    return (max_price << 160) | (agent_id << 120) | (expiry << 80) | (period_length << 40)


@internal
@pure
def _key_agent_id(config: uint256) -> uint256:
    """
    @dev The agent id of a config word (zero: no such key).
    @param config A word built by `_key_config`.
    @return Bits 120..159.
    """
    return (config >> 120) & MASK40


@internal
@pure
def _key_max_price(config: uint256) -> uint256:
    """
    @dev The most one call may cost, from a config word.
    @param config A word built by `_key_config`.
    @return Bits 160..255.
    """
    return config >> 160


@internal
@pure
def _key_expiry(config: uint256) -> uint256:
    """
    @dev The expiry timestamp of a config word.
    @param config A word built by `_key_config`.
    @return Bits 80..119.
    """
    return (config >> 80) & MASK40


@internal
@pure
def _key_period_length(config: uint256) -> uint256:
    """
    @dev The budget period length (seconds) of a config word.
    @param config A word built by `_key_config`.
    @return Bits 40..79.
    """
    return (config >> 40) & MASK40


@internal
@pure
def _key_revoked(config: uint256) -> bool:
    """
    @dev Whether a config word is marked revoked.
    @param config A word built by `_key_config`.
    @return Bit 0 is set.
    """
    return config & 1 == 1


@internal
@pure
def _key_with_revoked(config: uint256) -> uint256:
    """
    @dev A config word with the revoked mark set (for good).
    @param config A word built by `_key_config`.
    @return The same word with bit 0 set.
    """
    return config | 1


@internal
@pure
def _caps(period_cap: uint256, total_cap: uint256) -> uint256:
    """
    @dev Packs a session key's caps: periodCap (bits 128..255) | totalCap (bits 0..127).
    @param period_cap The most the key may spend per period (< 2**96).
    @param total_cap The most the key may ever spend (< 2**128).
    @return The packed word.
    """
    return (period_cap << 128) | total_cap


@internal
@pure
def _caps_period(caps: uint256) -> uint256:
    """
    @dev The per-period cap of a caps word.
    @param caps A word built by `_caps`.
    @return Bits 128..255.
    """
    return caps >> 128


@internal
@pure
def _caps_total(caps: uint256) -> uint256:
    """
    @dev The total cap of a caps word.
    @param caps A word built by `_caps`.
    @return Bits 0..127.
    """
    return caps & MASK128


@internal
@pure
def _spent(total: uint256, period_spent: uint256, period: uint256) -> uint256:
    """
    @dev Packs a session key's spending: totalSpent (bits 128..255) | periodSpent (32..127) | period (0..31).
    @param total Everything the key spent.
    @param period_spent What it spent in `period` (< 2**96, below the period cap).
    @param period The budget period number, modulo 2**32.
    @return The packed word.
    """
    return (total << 128) | (period_spent << 32) | period


@internal
@pure
def _spent_total(spent: uint256) -> uint256:
    """
    @dev Everything a key spent, from a spending word.
    @param spent A word built by `_spent`.
    @return Bits 128..255.
    """
    return spent >> 128


@internal
@pure
def _spent_in_period(spent: uint256) -> uint256:
    """
    @dev What a key spent in the word's period.
    @param spent A word built by `_spent`.
    @return Bits 32..127.
    """
    return (spent >> 32) & MASK96


@internal
@pure
def _spent_period(spent: uint256) -> uint256:
    """
    @dev The budget period (modulo 2**32) a spending word counts.
    @param spent A word built by `_spent`.
    @return Bits 0..31.
    """
    return spent & MASK32
