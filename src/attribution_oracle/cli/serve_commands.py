"""`serve` (the OpenLoRA server) and `infer` (pay on-chain, then ask the server)."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import click

from attribution_oracle.chain.web3_client import format_eth
from attribution_oracle.cli.cli_context import App, pass_app, password_option, table
from attribution_oracle.cli.market_commands import check_payable, input_hash, pay_for_prompts
from attribution_oracle.cli.params import CHAIN_ID, PORT, UINT256_MAX, BoundedIntType
from attribution_oracle.errors import UserError
from attribution_oracle.serving.rag_retriever import DEFAULT_TOP_K, MAX_TOP_K
from attribution_oracle.settlement.chain_data import receipts

DEFAULT_SERVER = "http://127.0.0.1:8000"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(text: str) -> int:
    """``"512MB"``, ``"1GiB"`` or a plain integer: a size in bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise UserError(f"size {text!r}: use bytes or a unit among KB, MB, GB, KiB, MiB, GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def check_port_free(host: str, port: int) -> None:
    """``UserError`` unless ``host:port`` can be listened on now (checked before the slow model load)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host!r} does not resolve ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise UserError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is another server running? choose another --port"
            ) from None


def _model_ids(values: tuple[str, ...]) -> list[int]:
    ids = []
    for value in values:
        for part in value.replace(",", " ").split():
            if not part.isdigit() or not 1 <= int(part) <= UINT256_MAX:
                raise UserError(f"--model-ids: {part!r} is not a model id (whole numbers from 1 to 2**256 - 1)")
            ids.append(int(part))
    if not ids:
        raise UserError("--model-ids: give at least one model id")
    return sorted(set(ids))


@click.command("serve")
@click.option("--model-ids", "model_ids", multiple=True, required=True, help="Registered model ids to serve (1,2,3).")
@click.option("--base", default="smollm2", show_default=True, help="Base model: smollm2, tiny:SEED or an HF dir.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=PORT, help="TCP port.")
@click.option("--operator", default=None, metavar="WALLET", help="Operator account that marks requests served.")
@click.option(
    "--facilitator",
    default=None,
    metavar="WALLET",
    help="Account that submits x402 settlements (default: the operator; its own account lets them pipeline).",
)
@password_option
@click.option("--memory-budget", default="1GiB", show_default=True, help="Bytes of cached adapters (LRU).")
@click.option(
    "--max-batch", default=32, show_default=True, type=BoundedIntType(1, 1024), help="Rows in the continuous batch."
)
@click.option(
    "--lora-mode",
    type=click.Choice(["auto", "gather", "segment"]),
    default="auto",
    show_default=True,
    help="How LoRA deltas are batched.",
)
@click.option(
    "--base-precision",
    type=click.Choice(["auto", "bf16", "int8", "none"]),
    default="auto",
    show_default=True,
    help="Base linears in low precision (LoRA stays float32): int8 = smoothed W8A8 decoder linears on CPU, bf16; "
    "auto = int8 on CPUs with VNNI/AMX, else bf16 where that is fast (tiny models: float32); none = exact float32.",
)
@click.option("--records", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Served-record log.")
@click.option(
    "--rag",
    is_flag=True,
    help="Retrieval: put each model's best-matching training contributions in the prompt; they are recorded and paid.",
)
@click.option(
    "--top-k",
    default=DEFAULT_TOP_K,
    show_default=True,
    type=BoundedIntType(1, MAX_TOP_K),
    help="Contributions retrieved per request (with --rag).",
)
@pass_app
def serve(
    app: App,
    model_ids: tuple[str, ...],
    base: str,
    host: str,
    port: int,
    operator: str | None,
    facilitator: str | None,
    password_file: Path | None,
    memory_budget: str,
    max_batch: int,
    lora_mode: str,
    base_precision: str,
    records: Path | None,
    rag: bool,
    top_k: int,
) -> None:
    """Serve registered models over one base model (OpenAI-compatible API; paid requests only). Blocks.

    With --rag, each request's --top-k best training contributions of the model (BM25 over its own verified
    training data) are put in front of the prompt and listed in the served record: the oracle pays them a fixed
    share of the contributor pool and `report show` lists them as citations.
    """
    from attribution_oracle.models import load_base_model
    from attribution_oracle.serving.http_server import serve_forever
    from attribution_oracle.serving.openlora_service import OpenLoraService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ids = _model_ids(model_ids)
    budget = parse_bytes(memory_budget)
    check_port_free(host, port)
    signer = app.signer(operator, password_file) if operator else None
    if signer is None:
        app.say("[yellow]no --operator: requests are served and recorded but not marked served on-chain[/yellow]")
    with app.console.status(f"loading base model {base}"):
        base_model = load_base_model(base)
    with app.console.status(f"loading {len(ids)} adapter(s)"):
        service = OpenLoraService.from_chain(
            app.client,
            app.deployment,
            base_model,
            app.store,
            records or app.home / "served.sqlite",
            ids,
            signer,
            memory_budget=budget,
            max_batch=max_batch,
            lora_mode=lora_mode,
            facilitator=app.signer(facilitator, password_file) if facilitator else None,
            base_precision=base_precision,
            rag=rag,
            top_k=top_k,
        )
    if rag:
        app.say(f"retrieval on: top {top_k} training contribution(s) per request go into the context")
    app.say(f"serving models {', '.join(map(str, ids))} over {base_model.name} on http://{host}:{port}")
    serve_forever(service, host, port)


def _post(url: str, body: dict) -> dict:
    import httpx

    try:
        response = httpx.post(url, json=body, timeout=600)
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach the server at {url}: {exc}") from None
    try:
        data = response.json()
    except json.JSONDecodeError:
        raise UserError(f"the server answered {response.status_code} without JSON") from None
    if response.status_code != 200:
        message = data.get("error", {}).get("message", response.text) if isinstance(data, dict) else response.text
        raise UserError(f"the server refused ({response.status_code}): {message}")
    return data


def _check_served(server: str, model_id: int) -> None:
    import httpx

    try:
        response = httpx.get(f"{server}/v1/models", timeout=30)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach the server at {server} (nothing was paid): {exc}") from None
    if str(model_id) not in {m["id"] for m in response.json()["data"]}:
        raise UserError(f"the server at {server} does not serve model {model_id} (nothing was paid)")


@click.command("infer")
@click.argument("model_id", type=CHAIN_ID)
@click.argument("prompt")
@click.option("--wallet", "sender", required=True, metavar="WALLET", help="Paying account: a wallet name or dev:N.")
@password_option
@click.option("--server", default=None, help=f"Server URL (default $ATTRIBUTION_SERVER or {DEFAULT_SERVER}).")
@click.option(
    "--max-tokens", default=32, show_default=True, type=BoundedIntType(1, 1_000_000), help="Tokens to generate at most."
)
@click.option("--chat", is_flag=True, help="Send PROMPT as a user chat message (/v1/chat/completions).")
@click.option("--system", default=None, help="A system message (with --chat).")
@click.option("--max-fee", default=None, help="Highest acceptable price in OPEN (default: the price).")
@click.option(
    "--request-id", type=CHAIN_ID, default=None,
    help="Use this already paid, unserved request instead of paying again (to retry after a failure).",
)  # fmt: skip
@pass_app
def infer(
    app: App,
    model_id: int,
    prompt: str,
    sender: str,
    password_file: Path | None,
    server: str | None,
    max_tokens: int,
    chat: bool,
    system: str | None,
    max_fee: str | None,
    request_id: int | None,
) -> None:
    """Pay for one inference of MODEL_ID on-chain, run it on the server, print the output and the receipt.

    Everything the server checks is checked before paying: the server serves the model, the prompt is not
    empty (for --chat: it renders), the model is active and its price within --max-fee. If the server still
    fails after the payment, the error says how to retry (--request-id) or get the OPEN back (market refund).
    """
    from attribution_oracle.cli.cli_context import parse_amount

    server = (server or os.environ.get("ATTRIBUTION_SERVER") or DEFAULT_SERVER).rstrip("/")
    if system is not None and not chat:
        raise UserError("--system needs --chat")
    if not prompt.strip():
        raise UserError("the prompt is empty (nothing was paid)")
    limit = None if max_fee is None else parse_amount(max_fee, "max fee")
    signer = app.signer(sender, password_file)
    _check_served(server, model_id)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    paid_prompt = _post(f"{server}/v1/chat/render", {"messages": messages})["prompt"] if chat else prompt
    if request_id is None:
        check_payable(app, model_id, limit)
        (paid,) = pay_for_prompts(app, signer, model_id, [paid_prompt], limit)
        request_id = paid["requestId"]
    else:
        (paid,) = receipts(app.client, app.deployment, [request_id])
        paid = {**paid, "inputHash": input_hash(paid_prompt), "epoch": None}
    body = {"model": str(model_id), "max_tokens": max_tokens, "request_id": request_id}
    try:
        if chat:
            answer = _post(f"{server}/v1/chat/completions", {**body, "messages": messages})
            text = answer["choices"][0]["message"]["content"]
        else:
            answer = _post(f"{server}/v1/completions", {**body, "prompt": prompt})
            text = answer["choices"][0]["text"]
    except UserError as exc:
        raise UserError(
            f"{exc}. Request {request_id} is paid but not served: retry with `infer {model_id} PROMPT --request-id "
            f"{request_id} --wallet {sender}` (same prompt), or after the service window get the OPEN back with "
            f"`market refund {request_id} --from {sender}`"
        ) from None
    data = {
        "requestId": request_id,
        "modelId": model_id,
        "fee": str(paid["fee"]),
        "epoch": paid["epoch"],
        "inputHash": "0x" + paid["inputHash"].hex(),
        "adapterHash": answer["adapter_hash"],
        "text": text,
        "finishReason": answer["choices"][0]["finish_reason"],
        "usage": answer["usage"],
    }
    if "warning" in answer:
        data["warning"] = answer["warning"]
    if answer.get("retrieved"):  # the server retrieved these contributions into the context (serve --rag)
        data["retrieved"] = list(answer["retrieved"])
    if app.json_output:
        app.emit(data)
        return
    app.console.print(text, markup=False, highlight=False)
    if "warning" in answer:
        app.console.print(f"note: {answer['warning']}", markup=False, highlight=False)
    elif data["finishReason"] == "length":
        app.console.print(f"note: stopped at --max-tokens {max_tokens}", markup=False, highlight=False)
    rows = [
        ["request", request_id],
        ["model", model_id],
        ["fee (OPEN)", format_eth(paid["fee"])],
        ["epoch", paid["epoch"]],
        ["input hash", data["inputHash"]],
        ["adapter", data["adapterHash"]],
        ["tokens", f"{answer['usage']['prompt_tokens']} in, {answer['usage']['completion_tokens']} out"],
    ]
    if data.get("retrieved"):
        rows.append(["citations", ", ".join(f"#{c}" for c in data["retrieved"])])
    app.console.print(table("receipt", ["field", "value"], rows))


command = serve
