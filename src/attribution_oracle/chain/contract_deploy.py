"""Deploy and wire the contracts; used by both the CLI (`deploy`) and the ape script (`scripts/deploy.py`)."""

from __future__ import annotations

from collections.abc import Callable

from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.compile import compile_contract
from attribution_oracle.chain.deployments import ContractRecord, Deployment
from attribution_oracle.chain.web3_client import ChainClient

OPEN = 10**18
DEFAULT_CAP = 1_000_000_000 * OPEN
DEFAULT_CREATION_FEE = 10 * OPEN
DEFAULT_PROTOCOL_FEE_BPS = 500
DEFAULT_EPOCH_BLOCKS = 50
DEFAULT_SERVICE_WINDOW_S = 3600
DEFAULT_AGENT_MIN_STAKE = 10 * OPEN
DEFAULT_UNSTAKE_COOLDOWN_S = 7 * 86_400
DEFAULT_SLASH_DELAY_S = 2 * 86_400


def deploy_all(
    client: ChainClient,
    deployer: LocalAccount,
    *,
    treasury: str | None = None,
    supply_cap: int = DEFAULT_CAP,
    creation_fee: int = DEFAULT_CREATION_FEE,
    protocol_fee_bps: int = DEFAULT_PROTOCOL_FEE_BPS,
    oracle_signers: list[str] | None = None,
    oracle_threshold: int = 1,
    claim_delay_s: int = 0,
    epoch_blocks: int = DEFAULT_EPOCH_BLOCKS,
    service_window_s: int = DEFAULT_SERVICE_WINDOW_S,
    operators: list[str] | None = None,
    agent_min_stake: int = DEFAULT_AGENT_MIN_STAKE,
    unstake_cooldown_s: int = DEFAULT_UNSTAKE_COOLDOWN_S,
    slash_delay_s: int = DEFAULT_SLASH_DELAY_S,
    agent_validators: list[str] | None = None,
    agent_validator_threshold: int = 1,
    on_step: Callable[[str], None] = lambda _: None,
) -> Deployment:
    """Deploy and wire OpenToken, DatanetRegistry, ModelRegistry, RewardDistributor, InferenceMarket and AgentVault.

    The deployer becomes governance of all of them and the first OPEN minter; ``treasury`` (default: the
    deployer) receives Datanet creation fees, slashed stakes and protocol fees. The oracle set defaults to
    the deployer alone (m = 1); ``operators`` (default: the deployer) may mark inferences served. The AgentVault's
    validator set defaults to the oracle signers (m = ``agent_validator_threshold``).
    """
    treasury = treasury or deployer.address
    signers = oracle_signers or [deployer.address]
    records: dict[str, ContractRecord] = {}

    def deploy(name: str, *args: object) -> str:
        on_step(f"deploying {name}")
        artifact = compile_contract(name)
        receipt = client.deploy(artifact.abi, artifact.bytecode, list(args), deployer, f"deploy {name}")
        address = receipt["contractAddress"]
        records[name] = ContractRecord(address=address, abi=artifact.abi)
        return address

    token = deploy("OpenToken", supply_cap)
    datanets = deploy("DatanetRegistry", token, treasury, creation_fee)
    receipt_block = client.block("latest")
    models = deploy("ModelRegistry", datanets, protocol_fee_bps)
    distributor = deploy("RewardDistributor", token, signers, oracle_threshold, claim_delay_s)
    market = deploy("InferenceMarket", token, models, distributor, treasury, epoch_blocks, service_window_s)
    deploy(
        "AgentVault", token, market, treasury, agent_min_stake, unstake_cooldown_s, slash_delay_s,
        agent_validators or signers, agent_validator_threshold,
    )  # fmt: skip
    market_contract = client.w3.eth.contract(address=market, abi=records["InferenceMarket"].abi)
    for operator in operators or [deployer.address]:
        on_step(f"appointing serving operator {operator}")
        client.send(market_contract.functions.setOperator(operator, True), deployer, "appoint operator")
    return Deployment(
        chain_id=client.chain_id,
        block_number=int(receipt_block["number"]),
        block_hash=receipt_block["hash"].to_0x_hex(),
        deployer=deployer.address,
        contracts=records,
        config={
            "treasury": treasury,
            "supplyCap": str(supply_cap),
            "creationFee": str(creation_fee),
            "protocolFeeBps": protocol_fee_bps,
            "oracleSigners": signers,
            "oracleThreshold": oracle_threshold,
            "claimDelay": claim_delay_s,
            "epochBlocks": epoch_blocks,
            "serviceWindow": service_window_s,
            "agentMinStake": str(agent_min_stake),
            "unstakeCooldown": unstake_cooldown_s,
            "slashDelay": slash_delay_s,
        },
    )
