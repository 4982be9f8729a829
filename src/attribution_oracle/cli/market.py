"""`market pay|serve|refund|show`: paying per inference in OPEN, proof of service and refunds."""

from __future__ import annotations

import hashlib

import click
from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.client import format_eth
from attribution_oracle.chain.token import ensure_allowance, events_of
from attribution_oracle.cli.app import App, from_option, pass_app, password_option, table
from attribution_oracle.errors import UserError
from attribution_oracle.settlement.chain_data import receipts

STATUS = {0: "unknown", 1: "paid", 2: "served", 3: "refunded"}


def input_hash(prompt: str) -> bytes:
    """The on-chain hash of a prompt: sha256 of its UTF-8 bytes (what the server checks)."""
    return hashlib.sha256(prompt.encode()).digest()


def pay_for_prompts(
    app: App, signer: LocalAccount, model_id: int, prompts: list[str], max_fee: int | None = None
) -> list[dict]:
    """Pay for one inference of ``model_id`` per prompt (one transaction); returns the InferencePaid events.

    Each payment commits to ``input_hash(prompt)``; ``max_fee`` (wei, default the current price) caps the price.
    Shared by ``market pay`` and ``infer``.
    """
    market, models, token = app.contract("InferenceMarket"), app.contract("ModelRegistry"), app.contract("OpenToken")
    model = app.client.call(models.functions.getModel(model_id))
    price, active = model[4], model[7]
    if not active:
        raise UserError(f"model {model_id} is inactive")
    limit = price if max_fee is None else max_fee
    # a per-token model escrows the authorized maximum (the market pulls up to `limit` per prompt)
    ensure_allowance(app.client, token, signer, market.address, max(price, limit) * len(prompts))
    hashes = [input_hash(p) for p in prompts]
    if len(prompts) == 1:
        fn = market.functions.payForInference(model_id, hashes[0], limit)
    else:
        fn = market.functions.payForInferenceBatch([model_id] * len(prompts), hashes, [limit] * len(prompts))
    receipt = app.client.send(fn, signer, f"pay for {len(prompts)} inference(s)")
    return events_of(market, "InferencePaid", receipt)


@click.group("market")
def command() -> None:
    """Pay per inference in OPEN; operators mark requests served; unserved requests are refunded."""


@command.command("pay")
@click.argument("model_id", type=int)
@click.option("--prompt", "prompts", multiple=True, required=True, help="Prompt text (repeat to pay for several).")
@click.option("--max-fee", default=None, help="Highest acceptable price per inference in OPEN (default: the price).")
@from_option
@password_option
@pass_app
def pay(app: App, model_id: int, prompts: tuple[str, ...], max_fee: str | None, sender: str, password_file) -> None:
    """Pay for inferences of MODEL_ID (one transaction for several prompts)."""
    from attribution_oracle.cli.app import parse_amount

    limit = None if max_fee is None else parse_amount(max_fee, "max fee")
    paid = pay_for_prompts(app, app.signer(sender, password_file), model_id, list(prompts), limit)
    rows = [
        [e["requestId"], model_id, format_eth(e["fee"]), e["epoch"], "0x" + e["inputHash"].hex()[:16]] for e in paid
    ]
    app.emit(
        [{"requestId": e["requestId"], "fee": str(e["fee"]), "epoch": e["epoch"]} for e in paid],
        table("paid", ["request", "model", "fee (OPEN)", "epoch", "input hash"], rows),
    )


@command.command("serve")
@click.argument("request_ids", nargs=-1, type=int, required=True)
@from_option
@password_option
@pass_app
def serve(app: App, request_ids: tuple[int, ...], sender: str, password_file) -> None:
    """Mark paid requests served (operators only), releasing their fees to treasury, owner and reward pool."""
    signer = app.signer(sender, password_file)
    market = app.contract("InferenceMarket")
    found = receipts(app.client, app.deployment, list(request_ids))
    app.client.send(market.functions.markServed(found), signer, f"mark {len(found)} request(s) served")
    app.result({"served": list(request_ids)}, f"served: {', '.join(map(str, request_ids))}")


@command.command("refund")
@click.argument("request_id", type=int)
@from_option
@password_option
@pass_app
def refund(app: App, request_id: int, sender: str, password_file) -> None:
    """Refund a request nobody served within the service window (the OPEN goes to its payer)."""
    signer = app.signer(sender, password_file)
    market = app.contract("InferenceMarket")
    (found,) = receipts(app.client, app.deployment, [request_id])
    app.client.send(market.functions.refund(found), signer, f"refund request {request_id}")
    app.result({"refunded": request_id}, f"refunded request {request_id}: {format_eth(found['fee'])} OPEN")


@command.command("show")
@click.argument("request_ids", nargs=-1, type=int, required=True)
@pass_app
def show(app: App, request_ids: tuple[int, ...]) -> None:
    """Show requests: payer, fee, split and status."""
    market = app.contract("InferenceMarket")
    rows, data = [], []
    for r in receipts(app.client, app.deployment, list(request_ids)):
        status = STATUS[app.client.call(market.functions.requestStatus(r["requestId"]))]
        s = r["split"]
        data.append({**r, "status": status})
        rows.append(
            [r["requestId"], r["modelId"], r["payer"], format_eth(r["fee"]), status]
            + [format_eth(s[k]) for k in ("protocol", "owner", "datanetOwners", "contributors")]
        )
    header = ["request", "model", "payer", "fee", "status", "protocol", "owner", "datanets", "contributors"]
    app.emit(data, table("requests", header, rows))
