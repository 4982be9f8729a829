"""`market pay|serve|refund|show`: paying per inference in OPEN, proof of service and refunds."""

from __future__ import annotations

import click
from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.cli.cli_context import App, from_option, pass_app, password_option, table
from attribution_oracle.cli.params import CHAIN_ID
from attribution_oracle.errors import UserError
from attribution_oracle.settlement import inference_payments as payments
from attribution_oracle.settlement.chain_data import receipts
from attribution_oracle.settlement.inference_payments import input_hash

STATUS = {0: "unknown", 1: "paid", 2: "served", 3: "refunded"}


def check_payable(app: App, model_id: int, max_fee: int | None = None) -> int:
    """``settlement.inference_payments.check_payable`` for the CLI's deployment."""
    return payments.check_payable(app.reader, model_id, max_fee)


def pay_for_prompts(
    app: App, signer: LocalAccount, model_id: int, prompts: list[str], max_fee: int | None = None
) -> list[dict]:
    """Pay for one inference of ``model_id`` per prompt (one transaction); returns the InferencePaid events.

    Each payment commits to ``input_hash(prompt)``; ``max_fee`` (wei, default the current price) caps the price.
    Shared by ``market pay`` and ``infer``.
    """
    return pay_for_hashes(app, signer, model_id, [input_hash(p) for p in prompts], max_fee)


def pay_for_hashes(
    app: App, signer: LocalAccount, model_id: int, hashes: list[bytes], max_fee: int | None = None
) -> list[dict]:
    """Pay for one inference of ``model_id`` per input hash (sha256 of the exact prompt; one transaction)."""
    return payments.pay_for_hashes(app.client, app.deployment, signer, model_id, hashes, max_fee)


@click.group("market")
def command() -> None:
    """Pay per inference in OPEN; operators mark requests served; unserved requests are refunded."""


@command.command("pay")
@click.argument("model_id", type=CHAIN_ID)
@click.option("--prompt", "prompts", multiple=True, help="Prompt text (repeat to pay for several).")
@click.option(
    "--input-hash", "input_hashes", multiple=True,
    help="sha256 of the exact prompt, 64 hex characters (repeat); use it when a shell would change the text, "
    "e.g. drop the trailing newline of a rendered chat prompt (POST /v1/chat/render returns the hash).",
)  # fmt: skip
@click.option("--max-fee", default=None, help="Highest acceptable price per inference in OPEN (default: the price).")
@from_option
@password_option
@pass_app
def pay(
    app: App,
    model_id: int,
    prompts: tuple[str, ...],
    input_hashes: tuple[str, ...],
    max_fee: str | None,
    sender: str,
    password_file,
) -> None:
    """Pay for inferences of MODEL_ID (one transaction for several prompts or input hashes)."""
    from attribution_oracle.cli.cli_context import parse_amount
    from attribution_oracle.store.digests import normalize_digest
    from attribution_oracle.store.store_errors import InvalidDigestError

    limit = None if max_fee is None else parse_amount(max_fee, "max fee")
    if not prompts and not input_hashes:
        raise UserError("give at least one --prompt TEXT or --input-hash HEX")
    try:
        hashes = [input_hash(p) for p in prompts] + [bytes.fromhex(normalize_digest(h)) for h in input_hashes]
    except InvalidDigestError:
        raise UserError("--input-hash must be 64 hex characters (the sha256 of the prompt)") from None
    paid = pay_for_hashes(app, app.signer(sender, password_file), model_id, hashes, limit)
    rows = [
        [e["requestId"], model_id, format_eth(e["fee"]), e["epoch"], "0x" + e["inputHash"].hex()[:16]] for e in paid
    ]
    app.emit(
        [{"requestId": e["requestId"], "fee": str(e["fee"]), "epoch": e["epoch"]} for e in paid],
        table("paid", ["request", "model", "fee (OPEN)", "epoch", "input hash"], rows),
    )


@command.command("serve")
@click.argument("request_ids", nargs=-1, type=CHAIN_ID, required=True)
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
@click.argument("request_id", type=CHAIN_ID)
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
@click.argument("request_ids", nargs=-1, type=CHAIN_ID, required=True)
@pass_app
def show(app: App, request_ids: tuple[int, ...]) -> None:
    """Show requests: payer, fee, split and status."""
    rows, data = [], []
    for r in receipts(app.client, app.deployment, list(request_ids)):
        status = STATUS[app.reader.request_status(r["requestId"])]
        s = r["split"]
        data.append(
            {**r, "fee": str(r["fee"]), "split": {k: str(v) for k, v in s.items()}, "status": status}
        )  # wei as strings, as in every JSON output
        rows.append(
            [r["requestId"], r["modelId"], app.name_of(r["payer"]), format_eth(r["fee"]), status]
            + [format_eth(s[k]) for k in ("protocol", "owner", "datanetOwners", "contributors")]
        )
    header = ["request", "model", "payer", "fee", "status", "protocol", "owner", "datanets", "contributors"]
    app.emit(data, table("requests", header, rows))
