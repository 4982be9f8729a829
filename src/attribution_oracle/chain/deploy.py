"""Deploy and wire the contracts; used by both the CLI (`deploy`) and the ape script (`scripts/deploy.py`)."""

from __future__ import annotations

from collections.abc import Callable

from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.client import ChainClient
from attribution_oracle.chain.compile import compile_contract
from attribution_oracle.chain.deployments import ContractRecord, Deployment

OPEN = 10**18
DEFAULT_CAP = 1_000_000_000 * OPEN
DEFAULT_CREATION_FEE = 10 * OPEN
DEFAULT_PROTOCOL_FEE_BPS = 500


def deploy_all(
    client: ChainClient,
    deployer: LocalAccount,
    *,
    treasury: str | None = None,
    supply_cap: int = DEFAULT_CAP,
    creation_fee: int = DEFAULT_CREATION_FEE,
    protocol_fee_bps: int = DEFAULT_PROTOCOL_FEE_BPS,
    on_step: Callable[[str], None] = lambda _: None,
) -> Deployment:
    """Deploy OpenToken, DatanetRegistry and ModelRegistry wired together; return the deployment record.

    The deployer becomes governance of all three and the first OPEN minter; ``treasury`` (default: the
    deployer) receives Datanet creation fees and slashed stakes.
    """
    treasury = treasury or deployer.address
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
    deploy("ModelRegistry", datanets, protocol_fee_bps)
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
        },
    )
