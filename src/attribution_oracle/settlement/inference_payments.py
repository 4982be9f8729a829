"""Paying for inferences in the InferenceMarket: the checks that run before paying, and the payment itself.

A payment commits to ``input_hash(prompt)``: the sha256 of the prompt's UTF-8 bytes, which the server checks.
"""

from __future__ import annotations

import hashlib

from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.open_token import ensure_allowance, events_of
from attribution_oracle.chain.reads import ChainReader
from attribution_oracle.chain.web3_client import ChainClient, format_eth
from attribution_oracle.errors import UserError

__all__ = ["check_payable", "input_hash", "pay_for_hashes"]


def input_hash(prompt: str) -> bytes:
    """The on-chain hash of a prompt: sha256 of its UTF-8 bytes (what the server checks)."""
    return hashlib.sha256(prompt.encode()).digest()


def check_payable(reader: ChainReader, model_id: int, max_fee: int | None = None) -> int:
    """The price of one inference of ``model_id``; ``UserError`` (before paying) if inactive or above ``max_fee``."""
    model = reader.model(model_id)
    if not model.active:
        raise UserError(f"model {model_id} is inactive (nothing was paid)")
    if max_fee is not None and model.price > max_fee:
        raise UserError(
            f"model {model_id} costs {format_eth(model.price)} OPEN, above --max-fee {format_eth(max_fee)} "
            "(nothing was paid)"
        )
    return model.price


def pay_for_hashes(
    client: ChainClient,
    deployment: Deployment,
    signer: LocalAccount,
    model_id: int,
    hashes: list[bytes],
    max_fee: int | None = None,
) -> list[dict]:
    """Pay for one inference of ``model_id`` per input hash (one transaction); returns the InferencePaid events.

    ``max_fee`` (wei, default the current price) caps the price of each.
    """
    market, token = client.contract(deployment, "InferenceMarket"), client.contract(deployment, "OpenToken")
    price = check_payable(ChainReader(client, deployment), model_id, max_fee)
    limit = price if max_fee is None else max_fee
    # a per-token model escrows the authorized maximum (the market pulls up to `limit` per prompt)
    ensure_allowance(client, token, signer, market.address, max(price, limit) * len(hashes))
    if len(hashes) == 1:
        fn = market.functions.payForInference(model_id, hashes[0], limit)
    else:
        fn = market.functions.payForInferenceBatch([model_id] * len(hashes), hashes, [limit] * len(hashes))
    receipt = client.send(fn, signer, f"pay for {len(hashes)} inference(s)")
    return events_of(market, "InferencePaid", receipt)
