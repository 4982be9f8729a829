"""Per-token prices of a model (ModelRegistry ``setTokenRates`` / ``tokenRates``)."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from attribution_oracle.agent.vault import named_contract
from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.errors import UserError

__all__ = ["set_token_rates", "token_rates"]


def token_rates(client: ChainClient, deployment: Deployment, model_id: int) -> dict[str, int]:
    """``{"inputPer1k", "outputPer1k", "flatFee"}`` in wei (all zero: the model is flat-priced)."""
    r = client.call(named_contract(client, deployment, "ModelRegistry").functions.tokenRates(model_id))
    return {"inputPer1k": r.inputPer1k, "outputPer1k": r.outputPer1k, "flatFee": r.flatFee}


def set_token_rates(
    client: ChainClient, deployment: Deployment, owner: LocalAccount, model_id: int, input_per_1k: int,
    output_per_1k: int, flat_fee: int,
) -> None:  # fmt: skip
    """Set a model's per-token rates (its owner only; both rates zero returns it to its flat price)."""
    registry = named_contract(client, deployment, "ModelRegistry")
    count = client.call(registry.functions.modelCount())
    if not 0 < model_id <= count:
        raise UserError(f"model {model_id} does not exist (models: 1..{count})")
    model = client.call(registry.functions.getModel(model_id))
    if model.owner.lower() != owner.address.lower():
        raise UserError(f"model {model_id} is owned by {model.owner}, not {owner.address}")
    fn = registry.functions.setTokenRates(model_id, (input_per_1k, output_per_1k, flat_fee))
    client.send(fn, owner, "set token rates")
