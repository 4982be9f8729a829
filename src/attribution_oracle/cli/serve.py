"""`serve` (the OpenLoRA server) and `infer` (pay on-chain, then ask the server)."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import click

from attribution_oracle.chain.client import format_eth
from attribution_oracle.cli.app import App, pass_app, password_option, table
from attribution_oracle.cli.market import pay_for_prompts
from attribution_oracle.errors import UserError

DEFAULT_SERVER = "http://127.0.0.1:8000"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(text: str) -> int:
    """``"512MB"``, ``"1GiB"`` or a plain integer: a size in bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise UserError(f"size {text!r}: use bytes or a unit among KB, MB, GB, KiB, MiB, GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _model_ids(values: tuple[str, ...]) -> list[int]:
    ids = []
    for value in values:
        for part in value.replace(",", " ").split():
            if not part.isdigit() or int(part) == 0:
                raise UserError(f"--model-ids: {part!r} is not a model id")
            ids.append(int(part))
    if not ids:
        raise UserError("--model-ids: give at least one model id")
    return sorted(set(ids))


@click.command("serve")
@click.option("--model-ids", "model_ids", multiple=True, required=True, help="Registered model ids to serve (1,2,3).")
@click.option("--base", default="smollm2", show_default=True, help="Base model: smollm2, tiny:SEED or an HF dir.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option("--operator", default=None, metavar="WALLET", help="Operator account that marks requests served.")
@password_option
@click.option("--memory-budget", default="1GiB", show_default=True, help="Bytes of cached adapters (LRU).")
@click.option("--max-batch", default=32, show_default=True, type=int, help="Rows in the continuous batch.")
@click.option(
    "--lora-mode",
    type=click.Choice(["auto", "gather", "segment"]),
    default="auto",
    show_default=True,
    help="How LoRA deltas are batched.",
)
@click.option(
    "--base-precision",
    type=click.Choice(["auto", "bf16", "none"]),
    default="auto",
    show_default=True,
    help="Base linears in bfloat16 (LoRA stays float32); auto = where it is faster (none = exact float32).",
)
@click.option("--records", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Served-record log.")
@pass_app
def serve(
    app: App,
    model_ids: tuple[str, ...],
    base: str,
    host: str,
    port: int,
    operator: str | None,
    password_file: Path | None,
    memory_budget: str,
    max_batch: int,
    lora_mode: str,
    base_precision: str,
    records: Path | None,
) -> None:
    """Serve registered models over one base model (OpenAI-compatible API; paid requests only). Blocks."""
    from attribution_oracle.models import load_base_model
    from attribution_oracle.serving.server import serve_forever
    from attribution_oracle.serving.service import OpenLoraService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ids = _model_ids(model_ids)
    budget = parse_bytes(memory_budget)
    if max_batch < 1:
        raise UserError("--max-batch must be at least 1")
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
            base_precision=base_precision,
        )
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
@click.argument("model_id", type=int)
@click.argument("prompt")
@click.option("--wallet", "sender", required=True, metavar="WALLET", help="Paying account: a wallet name or dev:N.")
@password_option
@click.option("--server", default=None, help=f"Server URL (default $ATTRIBUTION_SERVER or {DEFAULT_SERVER}).")
@click.option("--max-tokens", default=32, show_default=True, type=int, help="Tokens to generate at most.")
@click.option("--chat", is_flag=True, help="Send PROMPT as a user chat message (/v1/chat/completions).")
@click.option("--system", default=None, help="A system message (with --chat).")
@click.option("--max-fee", default=None, help="Highest acceptable price in OPEN (default: the price).")
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
) -> None:
    """Pay for one inference of MODEL_ID on-chain, run it on the server, print the output and the receipt."""
    from attribution_oracle.cli.app import parse_amount

    server = (server or os.environ.get("ATTRIBUTION_SERVER") or DEFAULT_SERVER).rstrip("/")
    if max_tokens < 1:
        raise UserError("--max-tokens must be at least 1")
    if system is not None and not chat:
        raise UserError("--system needs --chat")
    limit = None if max_fee is None else parse_amount(max_fee, "max fee")
    signer = app.signer(sender, password_file)
    _check_served(server, model_id)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    paid_prompt = _post(f"{server}/v1/chat/render", {"messages": messages})["prompt"] if chat else prompt
    (paid,) = pay_for_prompts(app, signer, model_id, [paid_prompt], limit)
    request_id = paid["requestId"]
    body = {"model": str(model_id), "max_tokens": max_tokens, "request_id": request_id}
    if chat:
        answer = _post(f"{server}/v1/chat/completions", {**body, "messages": messages})
        text = answer["choices"][0]["message"]["content"]
    else:
        answer = _post(f"{server}/v1/completions", {**body, "prompt": prompt})
        text = answer["choices"][0]["text"]
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
    if app.json_output:
        app.emit(data)
        return
    app.console.print(text, markup=False, highlight=False)
    rows = [
        ["request", request_id],
        ["model", model_id],
        ["fee (OPEN)", format_eth(paid["fee"])],
        ["epoch", paid["epoch"]],
        ["input hash", data["inputHash"]],
        ["adapter", data["adapterHash"]],
        ["tokens", f"{answer['usage']['prompt_tokens']} in, {answer['usage']['completion_tokens']} out"],
    ]
    app.console.print(table("receipt", ["field", "value"], rows))


command = serve
